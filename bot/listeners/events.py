"""Event listeners: a mention of the bot with article text or links, or an empty one inside a thread."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App, Say

from bot.submit import JobSubmitter
from common.articles import has_article
from common.jobs import ClassifyRequest
from telemetry import metrics
from ui.texts import MENTION_USAGE, member_rate_limited

log = logging.getLogger(__name__)


def answer_once(submitter: JobSubmitter, delivery_key: str, post: Callable[[], object]) -> None:
    """Post the usage line once per delivery: Slack's redeliveries of the same event (X-Slack-Retry-Num) find
    the delivery already claimed, with the same claim (``newsbot:delivery:<key>``) the job submitter uses."""
    with submitter.once(delivery_key) as first:
        if not first:
            log.info("duplicate delivery %s: usage already posted", delivery_key)
            return
        post()  # if it raises, the claim is forgotten: Slack's redelivery (Bolt answers 500) can post it


def over_rate(submitter: JobSubmitter, user: str | None, kind: str, tell: Callable[[str], object]) -> bool:
    r"""Whether ``user`` is over MEMBER_RATE_PER_MINUTE (:meth:`JobSubmitter.admit`): then nothing is enqueued or
    answered, but the first refusal of the window, which ``tell``\ s the member the polite note, once."""
    admission = submitter.admit(user, kind)
    if admission == "refused_first":
        tell(member_rate_limited(submitter.member_rate_per_minute))
    return admission != "admitted"


def handle_app_mention(event: dict[str, Any], body: dict[str, Any], submitter: JobSubmitter, say: Say) -> None:
    """Enqueue the mentioned article; the worker replies in the thread.

    Bolt acks the event after this returns; if it raises (Redis down), the event is answered 500 or left
    unacked in Socket Mode, and Slack redelivers it.
    """
    thread_ts = event.get("thread_ts") or event["ts"]
    if over_rate(submitter, event.get("user"), "mention", lambda note: say(text=note, thread_ts=thread_ts)):
        return
    text = event.get("text", "")
    if not has_article(text):
        if event.get("thread_ts") and event["thread_ts"] != event["ts"]:
            # An empty mention inside a thread asks about the thread's first message: the worker reads it
            # (conversations.replies, a Slack call kept out of the ack) and classifies it.
            parent = ClassifyRequest(
                request_id=body["event_id"],
                text="",
                channel=event["channel"],
                user=event.get("user"),
                thread_ts=thread_ts,
                source="thread",
            )
            submitter.submit_classify(parent, delivery_key=f"event:{body['event_id']}")
            return
        metrics.REQUESTS.labels(kind="mention", outcome="usage").inc()
        answer_once(submitter, f"event:{body['event_id']}", lambda: say(text=MENTION_USAGE, thread_ts=thread_ts))
        return
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
