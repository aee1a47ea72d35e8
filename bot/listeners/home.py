"""The App Home: ``app_home_opened`` publishes the user's Home; the admins' Home buttons enqueue admin jobs.

Every Home button is checked on the server like ``/retrain``: a click by someone who is not an admin (now)
is refused on an updated Home and enqueues nothing. The jobs are the ones ``/retrain`` enqueues; they answer
in the user's DM with the app (its channel comes with ``app_home_opened``), since a Home has no channel.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from redis import Redis
from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.admins import AdminPolicy
from bot.editors import EditorPolicy
from bot.home import open_home, publish_home
from bot.submit import JobSubmitter
from common.exceptions import NewsbotError, TrainingInProgressError
from common.jobs import ROLLBACK_JOB, AdminRequest, RetrainRequest
from common.kinds import MODEL_KINDS, model_kind
from common.settings import Settings
from store import activity
from store.feedback import FeedbackStore
from ui.admin import EDITORS_ONLY, EDITORS_ONLY_LABELS, HOME_ROLLING_BACK, REOPEN_HOME, home_making_current, review_done
from ui.feedback import thanks
from ui.ids import (
    HOME_PROMOTE_ACTION,
    HOME_RETRAIN_ACTION,
    HOME_REVIEW_ACCEPT_ACTION,
    HOME_REVIEW_REJECT_ACTION,
    HOME_ROLLBACK_ACTION,
    HOME_UNSURE_LABEL_ACTION,
    reviewed,
    unsure_record,
)
from ui.progress import progress_line
from ui.retrain import home_queued_text

log = logging.getLogger(__name__)
RETRAIN_ACTIONS = re.compile(rf"^{HOME_RETRAIN_ACTION}_({'|'.join(MODEL_KINDS)})$")


def handle_app_home_opened(
    event: dict[str, Any], submitter: JobSubmitter, settings: Settings, admins: AdminPolicy, client: WebClient
) -> None:
    """Publish the Home each time its tab is opened (the Messages tab sends this event too: ignored)."""
    if event.get("tab", "home") != "home":
        return
    channel = str(event.get("channel") or "")
    open_home(client, submitter.connection, admins, event["user"], channel, settings)


@dataclass(frozen=True)
class _AdminClick:
    connection: Redis
    submitter: JobSubmitter
    settings: Settings  # the Home's day counts are the newsroom's days; its help says where results go
    user: str
    channel: str  # the user's DM with the app, where the job answers
    trigger: str

    def request(self, version: str | None = None) -> AdminRequest:
        return AdminRequest(request_id=self.trigger, user=self.user, channel=self.channel, version=version)


def _admin_click(
    body: dict[str, Any], submitter: JobSubmitter, settings: Settings, admins: AdminPolicy, client: WebClient
) -> _AdminClick | None:
    """The admin behind a Home click; None (after an updated Home said why) for anyone else."""
    connection = submitter.connection
    user = str((body.get("user") or {}).get("id") or "")
    try:
        admins.require(client, user)
    except NewsbotError as exc:
        publish_home(client, connection, user, False, settings, notice=f":no_entry: {exc.user_message}")
        return None
    viewer = activity.home_viewer(connection, user)
    if viewer is None or not viewer.channel:
        publish_home(client, connection, user, True, settings, notice=REOPEN_HOME)
        return None
    trigger = str(body.get("trigger_id") or "")
    return _AdminClick(connection, submitter, settings, user, viewer.channel, trigger)


@dataclass(frozen=True)
class _EditorClick:
    """An editor's click on the Home (the review queue, today's unsure articles): answered by republishing it."""

    client: WebClient
    connection: Redis
    settings: Settings
    user: str
    is_admin: bool

    def show(self, notice: str) -> None:
        publish_home(self.client, self.connection, self.user, self.is_admin, self.settings, notice=notice)


def _editor_click(
    body: dict[str, Any],
    feedback: FeedbackStore,
    settings: Settings,
    admins: AdminPolicy,
    client: WebClient,
    refusal: str,
    what: str,
) -> _EditorClick | None:
    """The editor behind a Home click, checked on the server; None (after the Home showed ``refusal``) for anyone
    else, whatever the Home they clicked in showed."""
    user = str((body.get("user") or {}).get("id") or "")
    click = _EditorClick(client, feedback.connection, settings, user, admins.is_admin(client, user))
    if not EditorPolicy(settings).is_editor(client, user):
        log.info("%s refused for %s: not an editor", what, user)
        click.show(refusal)
        return None
    return click


def _queued(client: WebClient, click: _AdminClick, text: str) -> None:
    publish_home(client, click.connection, click.user, True, click.settings, notice=text)


def handle_home_retrain(
    ack: Ack,
    body: dict[str, Any],
    action: dict[str, Any],
    submitter: JobSubmitter,
    settings: Settings,
    admins: AdminPolicy,
    client: WebClient,
) -> None:
    ack()
    click = _admin_click(body, submitter, settings, admins, client)
    if click is None:
        return
    kind = model_kind(str(action.get("value", "")))
    if kind is None:
        log.warning("home retrain with an unexpected type %r", action.get("value"))
        return
    request = RetrainRequest(
        request_id=click.trigger,
        user=click.user,
        channel=click.channel,
        model_type=kind,
    )
    try:
        job_id = click.submitter.submit_retrain(request, f"home:{click.trigger}", settings.retrain_timeout_s)
    except TrainingInProgressError as exc:
        summary = progress_line(exc.job_id, click.submitter.training_progress())
        _queued(client, click, f"{exc.user_message}\n{summary}")
        return
    if job_id is not None:
        _queued(client, click, home_queued_text(job_id, kind))


def _switch_model(client: WebClient, click: _AdminClick, version: str | None, notice: str) -> None:
    """Queue the admin job that makes ``version`` current (None: the previous one) and say so on the Home."""
    job_id = click.submitter.submit_admin(ROLLBACK_JOB, click.request(version), delivery_key=f"home:{click.trigger}")
    if job_id is not None:
        _queued(client, click, notice)


def handle_home_rollback(
    ack: Ack, body: dict[str, Any], submitter: JobSubmitter, settings: Settings, admins: AdminPolicy, client: WebClient
) -> None:
    ack()
    click = _admin_click(body, submitter, settings, admins, client)
    if click is not None:
        _switch_model(client, click, None, HOME_ROLLING_BACK)


def handle_home_promote(
    ack: Ack,
    body: dict[str, Any],
    action: dict[str, Any],
    submitter: JobSubmitter,
    settings: Settings,
    admins: AdminPolicy,
    client: WebClient,
) -> None:
    ack()
    click = _admin_click(body, submitter, settings, admins, client)
    version = str((action.get("selected_option") or {}).get("value") or "")
    if click is not None and version:
        _switch_model(client, click, version, home_making_current(version))


def handle_home_review(
    ack: Ack,
    body: dict[str, Any],
    action: dict[str, Any],
    feedback: FeedbackStore,
    settings: Settings,
    admins: AdminPolicy,
    client: WebClient,
) -> None:
    """An editor accepts or rejects a member's correction in the review queue: checked on the server (a click by
    someone who is not an editor now changes nothing), and the Home is republished with what happened."""
    ack()
    click = _editor_click(body, feedback, settings, admins, client, EDITORS_ONLY, "review")
    if click is None:
        return
    target = reviewed(str(action.get("value", "")))
    if target is None:
        log.warning("review with an unexpected value %r", action.get("value"))
        return
    member, record_id = target
    accept = action.get("action_id") == HOME_REVIEW_ACCEPT_ACTION
    try:
        decision = feedback.review(record_id, member, click.user, accept=accept)
    except NewsbotError as exc:
        click.show(exc.user_message)
        return
    click.show(review_done(decision.accepted, member))


def handle_home_unsure_label(
    ack: Ack,
    body: dict[str, Any],
    action: dict[str, Any],
    feedback: FeedbackStore,
    settings: Settings,
    admins: AdminPolicy,
    client: WebClient,
) -> None:
    """An editor labels one of today's unsure articles from the Home's list: stored as that editor's answer through
    the feedback path of the reply's buttons (:meth:`FeedbackStore.record`, counted live), checked on the server
    (someone who is not an editor now changes nothing); the Home is republished without the article."""
    ack()
    click = _editor_click(body, feedback, settings, admins, client, EDITORS_ONLY_LABELS, "unsure label")
    if click is None:
        return
    record_id = unsure_record(str(action.get("block_id", "")))
    chosen = str((action.get("selected_option") or {}).get("value") or "")
    if record_id is None or not chosen:
        log.warning("unsure label with an unexpected block %r", action.get("block_id"))
        return
    try:
        feedback.record(record_id, click.user, chosen, editor=True)
        found = feedback.classification(record_id)
    except NewsbotError as exc:
        click.show(exc.user_message)
        return
    click.show(thanks(chosen, found.slug, found.label_set))


def register(app: App) -> None:
    app.event("app_home_opened")(handle_app_home_opened)
    app.action(RETRAIN_ACTIONS)(handle_home_retrain)
    app.action(HOME_ROLLBACK_ACTION)(handle_home_rollback)
    app.action(HOME_PROMOTE_ACTION)(handle_home_promote)
    app.action(HOME_REVIEW_ACCEPT_ACTION)(handle_home_review)
    app.action(HOME_REVIEW_REJECT_ACTION)(handle_home_review)
    app.action(HOME_UNSURE_LABEL_ACTION)(handle_home_unsure_label)
