"""The message shortcut "Classify this article": classify an existing message and reply in its thread."""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError
from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.listeners.events import over_rate
from bot.submit import JobSubmitter
from common.articles import has_article, message_text
from common.jobs import ClassifyRequest
from telemetry import metrics
from ui.ids import CLASSIFY_MESSAGE_CALLBACK
from ui.texts import NOTHING_TO_CLASSIFY, QUEUE_DOWN, not_in_channel

log = logging.getLogger(__name__)


def _tell(
    client: WebClient, respond: Respond | None, channel: str, user: str | None, text: str, thread_ts: str | None
) -> None:
    """Say ``text`` to the user alone: an ephemeral note in the thread, or, where the bot is not in the channel
    (Slack refuses it), through the shortcut's own response_url, which works in any channel."""
    try:
        if user:
            client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
            return
    except SlackApiError as exc:
        if respond is None:
            raise
        log.info("ephemeral note refused (%s); answering through the response_url", exc.response.get("error"))
    if respond is not None:
        respond(text=not_in_channel(text), response_type="ephemeral", replace_original=False)


def handle_classify_message(
    ack: Ack, shortcut: dict[str, Any], submitter: JobSubmitter, client: WebClient, respond: Respond | None = None
) -> None:
    """Ack, then enqueue; Slack never redelivers a shortcut, so a failure to enqueue is told to the user.

    The shortcut works in any channel, the bot a member or not: the worker answers in the thread, or, when
    Slack refuses that (``not_in_channel``), through the shortcut's response_url (``fallback_url``), ephemeral.
    """
    ack()
    message: dict[str, Any] = shortcut.get("message") or {}
    channel = (shortcut.get("channel") or {}).get("id", "")
    user = (shortcut.get("user") or {}).get("id")
    thread_ts = message.get("thread_ts") or message.get("ts")
    if over_rate(submitter, user, "shortcut", lambda note: _tell(client, respond, channel, user, note, thread_ts)):
        return
    text = message_text(message)
    if not has_article(text):
        metrics.REQUESTS.labels(kind="shortcut", outcome="usage").inc()
        _tell(client, respond, channel, user, NOTHING_TO_CLASSIFY, thread_ts)
        return
    request = ClassifyRequest(
        request_id=shortcut["trigger_id"],
        text=text,
        channel=channel,
        user=user,
        thread_ts=thread_ts,
        source="shortcut",
        fallback_url=shortcut.get("response_url"),
    )
    try:
        submitter.submit_classify(request, delivery_key=f"shortcut:{shortcut['trigger_id']}")
    except RedisError:
        log.exception("could not enqueue the shortcut %s", shortcut["trigger_id"])
        _tell(client, respond, channel, user, QUEUE_DOWN, thread_ts)


def register(app: App) -> None:
    app.shortcut(CLASSIFY_MESSAGE_CALLBACK)(handle_classify_message)
