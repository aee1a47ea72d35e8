"""Builds the Bolt app: one place where the listeners are composed."""

from __future__ import annotations

from slack_bolt import App, BoltContext
from slack_sdk import WebClient

from bot.admins import AdminPolicy
from bot.listeners import register_listeners
from bot.submit import JobSubmitter
from common.feedback import FeedbackStore
from common.settings import Settings


def build_app(settings: Settings, submitter: JobSubmitter, *, http_mode: bool) -> App:
    client = WebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url, timeout=10)
    app = App(
        client=client,
        signing_secret=settings.slack_signing_secret or "",
        # Over HTTP the listener runs before the response, so a failure to enqueue answers 500 and Slack
        # retries the delivery instead of it being lost. Enqueueing takes milliseconds, well inside 3 s.
        process_before_response=http_mode,
        request_verification_enabled=http_mode,
    )

    admins = AdminPolicy(settings)
    feedback = FeedbackStore(submitter.connection)

    @app.middleware
    def inject_dependencies(context: BoltContext, next: object) -> None:
        context["submitter"] = submitter
        context["settings"] = settings
        context["admins"] = admins
        context["feedback"] = feedback
        next()  # type: ignore[operator]

    register_listeners(app)
    return app
