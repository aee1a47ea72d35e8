"""The message shortcut "Classify this article": classify an existing message and reply in its thread."""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError
from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot.listeners.commands import QUEUE_DOWN
from bot.submit import JobSubmitter
from common import metrics
from common.articles import has_article
from common.jobs import ClassifyRequest

log = logging.getLogger(__name__)

CLASSIFY_MESSAGE_CALLBACK = "classify_message"
NOTHING_TO_CLASSIFY = (
    "このメッセージには分類できる本文もリンクもありません。\nThis message has no article text or link to classify."
)


def message_text(message: dict[str, Any]) -> str:
    """The message's text, plus the links of its unfurled attachments (a pasted link shows as one)."""
    parts = [message.get("text") or ""]
    for attachment in message.get("attachments") or []:
        link = attachment.get("from_url") or attachment.get("original_url") or attachment.get("title_link")
        if link and link not in parts[0]:
            parts.append(link)
    return "\n".join(p for p in parts if p)


def handle_classify_message(ack: Ack, shortcut: dict[str, Any], context: BoltContext, client: WebClient) -> None:
    """Ack, then enqueue; Slack never redelivers a shortcut, so a failure to enqueue is told to the user."""
    ack()
    message: dict[str, Any] = shortcut.get("message") or {}
    channel = (shortcut.get("channel") or {}).get("id", "")
    user = (shortcut.get("user") or {}).get("id")
    thread_ts = message.get("thread_ts") or message.get("ts")
    text = message_text(message)
    if not has_article(text):
        metrics.REQUESTS.labels(kind="shortcut", outcome="usage").inc()
        if user:
            client.chat_postEphemeral(channel=channel, user=user, text=NOTHING_TO_CLASSIFY, thread_ts=thread_ts)
        return
    submitter: JobSubmitter = context["submitter"]
    request = ClassifyRequest(
        request_id=shortcut["trigger_id"],
        text=text,
        channel=channel,
        user=user,
        thread_ts=thread_ts,
        source="shortcut",
    )
    try:
        submitter.submit_classify(request, delivery_key=f"shortcut:{shortcut['trigger_id']}")
    except RedisError:
        log.exception("could not enqueue the shortcut %s", shortcut["trigger_id"])
        if user:
            client.chat_postEphemeral(channel=channel, user=user, text=QUEUE_DOWN, thread_ts=thread_ts)


def register(app: App) -> None:
    app.shortcut(CLASSIFY_MESSAGE_CALLBACK)(handle_classify_message)
