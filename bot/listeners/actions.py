"""Block actions: the feedback buttons and select on classification replies, and the admins' promote button."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.admins import AdminPolicy
from bot.editors import EditorPolicy
from bot.submit import JobSubmitter
from common.exceptions import NewsbotError
from common.jobs import ROLLBACK_JOB, AdminRequest
from common.labels import LabelSet
from common.settings import Settings
from store.classifications import ClassificationRecord
from store.feedback import FeedbackCounts, FeedbackStore
from ui.admin import making_current
from ui.feedback import CHOOSE_PROMPT, category_select, thanks, with_counts
from ui.ids import (
    FEEDBACK_CHOOSE_ACTION,
    FEEDBACK_CORRECT_ACTION,
    FEEDBACK_PICK_ACTION,
    FEEDBACK_WRONG_ACTION,
    RETRAIN_PROMOTE_ACTION,
    chosen_record,
    picked,
)

log = logging.getLogger(__name__)


def _snapshot(body: dict[str, Any]) -> dict[str, Any] | None:
    """The classification reply as the clicker saw it, or None for an ephemeral one (Slack sends no copy)."""
    message = body.get("message")
    channel = _channel(body)
    if not message or not channel or (body.get("container") or {}).get("is_ephemeral"):
        return None
    return {
        "channel": channel,
        "ts": message["ts"],
        "thread_ts": message.get("thread_ts"),
        "text": message.get("text", ""),
        "blocks": message.get("blocks") or [],
    }


def _show_counts(client: WebClient, snapshot: dict[str, Any] | None, counts: FeedbackCounts, labels: LabelSet) -> None:
    """Update the reply in place: its own blocks, with the counts block added or replaced."""
    if snapshot is None:
        return
    try:
        client.chat_update(
            channel=snapshot["channel"],
            ts=snapshot["ts"],
            text=snapshot.get("text") or "",
            blocks=with_counts(snapshot.get("blocks") or [], counts, labels),
        )
    except SlackApiError as exc:
        log.warning("could not update feedback counts on %s: %s", snapshot.get("ts"), exc)


def _channel(body: dict[str, Any]) -> str:
    return str((body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or "")


def _tell(client: WebClient, body: dict[str, Any], text: str, thread_ts: str | None = None) -> None:
    """Say ``text`` to the clicking user alone."""
    channel = _channel(body)
    user = (body.get("user") or {}).get("id")
    if channel and user:
        client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)


@dataclass(frozen=True)
class _Click:
    """A click on a classification reply's feedback button: who, on which record, in which message."""

    store: FeedbackStore
    record_id: str
    user: str
    snapshot: dict[str, Any] | None
    thread_ts: str | None
    found: ClassificationRecord


def _feedback_click(
    body: dict[str, Any], action: dict[str, Any], store: FeedbackStore, client: WebClient
) -> _Click | None:
    """The click's record (remembering the reply message for count updates); None once the user was told why not."""
    record_id = str(action.get("value", ""))
    snapshot = _snapshot(body)
    thread_ts = snapshot.get("thread_ts") if snapshot else None
    try:
        found = store.classification(record_id)
    except NewsbotError as exc:
        _tell(client, body, exc.user_message, thread_ts)
        return None
    if snapshot is not None:
        store.remember_message(record_id, snapshot)
    return _Click(store, record_id, body["user"]["id"], snapshot, thread_ts, found)


def _is_editor(settings: Settings, client: WebClient, user: str) -> bool:
    """Whether ``user``'s answer counts in the live accuracy (an editor's: :mod:`bot.editors`)."""
    return EditorPolicy(settings).is_editor(client, user)


def _answer(click: _Click, chosen: str, body: dict[str, Any], client: WebClient, settings: Settings) -> None:
    """Store ``chosen`` as the clicking user's answer (an editor's counts live), update the reply's counts and thank
    them in the thread: the Correct button and the "which desk?" buttons alike."""
    try:
        editor = _is_editor(settings, client, click.user)
        counts = click.store.record(click.record_id, click.user, chosen, editor=editor)
    except NewsbotError as exc:
        _tell(client, body, exc.user_message, click.thread_ts)
        return
    _show_counts(client, click.snapshot or click.store.message(click.record_id), counts, click.found.label_set)
    _tell(client, body, thanks(chosen, click.found.slug, click.found.label_set), click.thread_ts)


def handle_feedback_correct(
    ack: Ack,
    body: dict[str, Any],
    action: dict[str, Any],
    feedback: FeedbackStore,
    client: WebClient,
    settings: Settings,
) -> None:
    ack()
    click = _feedback_click(body, action, feedback, client)
    if click is not None:
        _answer(click, click.found.slug, body, client, settings)


def handle_feedback_wrong(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], feedback: FeedbackStore, client: WebClient
) -> None:
    """Offer the clicking user a select of the other labels of the model that classified the article (the record
    carries them: the bot never reads MODEL_DIR); the choice is stored when made."""
    ack()
    click = _feedback_click(body, action, feedback, client)
    if click is None:
        return
    store, record_id, user, thread_ts, found = click.store, click.record_id, click.user, click.thread_ts, click.found
    earlier = store.of_user(record_id, user)
    blocks = category_select(record_id, found.slug, earlier.chosen if earlier else None, found.label_set)
    client.chat_postEphemeral(
        channel=_channel(body),
        user=user,
        thread_ts=thread_ts,
        text=CHOOSE_PROMPT,
        blocks=blocks,
    )


def handle_feedback_choose(
    ack: Ack,
    body: dict[str, Any],
    action: dict[str, Any],
    feedback: FeedbackStore,
    client: WebClient,
    respond: Respond,
    settings: Settings,
) -> None:
    ack()
    block_id = str(action.get("block_id", ""))
    record_id = chosen_record(block_id)
    if record_id is None:
        log.warning("feedback select with an unexpected block id %r", block_id)
        return
    chosen = str((action.get("selected_option") or {}).get("value", ""))
    try:
        user = body["user"]["id"]
        counts = feedback.record(record_id, user, chosen, editor=_is_editor(settings, client, user))
        found = feedback.classification(record_id)
    except NewsbotError as exc:
        respond(text=exc.user_message, replace_original=True)
        return
    _show_counts(client, feedback.message(record_id), counts, found.label_set)
    # The select was shown to this user alone: replace it with the acknowledgement.
    respond(text=thanks(chosen, found.slug, found.label_set), replace_original=True)


def handle_feedback_pick(
    ack: Ack,
    body: dict[str, Any],
    action: dict[str, Any],
    feedback: FeedbackStore,
    client: WebClient,
    settings: Settings,
) -> None:
    """An editor's answer to an unsure reply's "which desk?" buttons: the label clicked, stored as that user's answer
    through the same feedback path as the category select (a labelled example for the next training)."""
    ack()
    pair = picked(str(action.get("value", "")))
    if pair is None:
        log.warning("which-desk button with an unexpected value %r", action.get("value"))
        return
    record_id, chosen = pair
    click = _feedback_click(body, {"value": record_id}, feedback, client)
    if click is not None:
        _answer(click, chosen, body, client, settings)


def handle_retrain_promote(
    ack: Ack,
    body: dict[str, Any],
    action: dict[str, Any],
    submitter: JobSubmitter,
    admins: AdminPolicy,
    client: WebClient,
    respond: Respond,
) -> None:
    """Make a trained-but-kept version current: an admin action, checked here whatever the UI showed."""
    ack()
    user = body["user"]["id"]
    try:
        admins.require(client, user)
    except NewsbotError as exc:
        _tell(client, body, exc.user_message)
        return
    channel = _channel(body)
    request = AdminRequest(
        request_id=body.get("trigger_id") or action.get("action_ts", ""),
        user=user,
        channel=channel,
        response_url=body.get("response_url"),
        version=str(action.get("value", "")) or None,
    )
    submitter.submit_admin(ROLLBACK_JOB, request, delivery_key=f"action:{request.request_id}")
    respond(
        text=making_current(request.version),
        response_type="ephemeral",
        replace_original=False,
    )


def register(app: App) -> None:
    app.action(FEEDBACK_CORRECT_ACTION)(handle_feedback_correct)
    app.action(FEEDBACK_WRONG_ACTION)(handle_feedback_wrong)
    app.action(FEEDBACK_CHOOSE_ACTION)(handle_feedback_choose)
    app.action(re.compile(rf"^{FEEDBACK_PICK_ACTION}_\d+$"))(handle_feedback_pick)
    app.action(RETRAIN_PROMOTE_ACTION)(handle_retrain_promote)
