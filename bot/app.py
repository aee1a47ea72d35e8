"""Builds the Bolt app: one place where the listeners are composed."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped

from bot.admins import AdminPolicy
from bot.context import Dependencies, dependencies
from bot.listeners import register_listeners
from bot.slack_client import web_client
from bot.submit import JobSubmitter
from common.logs import bind_log_context
from common.settings import Settings
from store.feedback import FeedbackStore

log = logging.getLogger(__name__)


def on_error(error: Exception, body: dict[str, Any], response: BoltResponse | None) -> BoltResponse | None:
    """Bolt's global error handler: unhandled requests, and listeners or middleware that raised.

    An event type nobody listens to is acknowledged (200) and ignored: a non-2xx makes Slack retry it, and
    eventually disable the subscription; in Socket Mode it would never be acked. Any other request nobody
    handles keeps Bolt's 404. A listener that raised (Redis down while enqueueing) keeps Bolt's 500: over HTTP
    Slack redelivers the event later, and in Socket Mode a non-200 is never acked, so Slack redelivers it too.
    """
    if isinstance(error, BoltUnhandledRequestError):
        if body.get("type") == "event_callback":
            log.info("ignored unhandled event type %s", (body.get("event") or {}).get("type"))
            return BoltResponse(status=200, body={"ignored": True})
        log.warning("no listener for a %s request", body.get("type") or body.get("command") or "Slack")
        return None
    delivery = body.get("event_id") or body.get("trigger_id") or body.get("type") or "request"
    log.error("could not handle %s (answered %s)", delivery, response.status if response else "-", exc_info=error)
    return None


class _TokenGivenByTheClient(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment itself and, since the app is given a client (which carries
    that token, the API URL and the timeout), warns "As you gave `client` as well, `token` will be unused" at every
    start. Here that is by design: the notice is dropped, Bolt's other warnings are kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


_token_notice = _TokenGivenByTheClient()


def build_app(settings: Settings, submitter: JobSubmitter) -> App:
    logging.getLogger("slack_bolt.App").addFilter(_token_notice)  # Bolt's logger for App (get_bolt_logger)
    app = App(
        # The same client as the workers': SLACK_TIMEOUT_S, and 429s, 5xx answers and dropped connections retried.
        client=web_client(settings),
        # The HTTP server (bot/server.py) checks each request's signature once, on the raw bytes, before it
        # parses them; Socket Mode requests arrive over the authenticated WebSocket. Bolt does not check again.
        signing_secret="",
        request_verification_enabled=False,
        # The listener runs before the answer (the HTTP response, or the Socket Mode ack), in both modes: a
        # failure to enqueue answers 500 (HTTP) or leaves the envelope unacked (Socket Mode), and Slack
        # redelivers the event instead of it being lost. Enqueueing takes milliseconds, well inside 3 s.
        process_before_response=True,
        raise_error_for_unhandled_request=True,
    )
    app.error(on_error)

    @app.middleware
    def in_log_context(body: dict[str, Any], next: object) -> None:
        """Every log line of this request names its Slack event (or trigger) id (LOG_FORMAT=json). Bound, not
        wrapped: Bolt runs the listener after the middleware has returned, in the same thread."""
        bind_log_context(event_id=body.get("event_id"), trigger_id=body.get("trigger_id"))
        next()  # type: ignore[operator]

    shared = Dependencies(
        submitter, settings, AdminPolicy(settings), FeedbackStore(submitter.connection, settings.newsroom_timezone)
    )
    app.middleware(dependencies(shared))

    register_listeners(app)
    return app
