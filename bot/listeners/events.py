"""Event listeners: a mention of the bot with article text or links."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App, BoltContext, Say

from bot.submit import JobSubmitter
from common.articles import has_article
from common.jobs import ClassifyRequest

log = logging.getLogger(__name__)

USAGE = (
    "記事の本文かリンクを添えてメンションしてください。例: `@newsbot https://news.example.jp/article/123`\n"
    "Mention me with an article's text or a link to it, e.g. `@newsbot https://news.example.jp/article/123`."
)


def handle_app_mention(event: dict[str, Any], body: dict[str, Any], context: BoltContext, say: Say) -> None:
    """Enqueue the mentioned article; the worker replies in the thread. Events are acked by Bolt."""
    thread_ts = event.get("thread_ts") or event["ts"]
    text = event.get("text", "")
    if not has_article(text):
        say(text=USAGE, thread_ts=thread_ts)
        return
    submitter: JobSubmitter = context["submitter"]
    request = ClassifyRequest(
        request_id=body["event_id"],
        text=text,
        channel=event["channel"],
        user=event.get("user"),
        thread_ts=thread_ts,
        source="mention",
    )
    submitter.submit_classify(request, delivery_key=f"event:{body['event_id']}")


def register(app: App) -> None:
    app.event("app_mention")(handle_app_mention)
