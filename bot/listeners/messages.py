"""Message events: new articles in watched channels, and messages sent to the bot in its Messages tab (DMs).

Slack sends every message of a channel the bot is in (``message.channels``, ``message.groups``) and of its DMs
(``message.im``). Only a person's new top-level message is looked at: edits (``message_changed``), deletions,
joins and every other subtype, bot messages (the bot's own included) and thread replies are acked and ignored.

- In a watched channel (``/classify-news watch``), a message with a link or with at least
  :data:`WATCH_MIN_TEXT_CHARS` characters of text (code blocks, emoji and mentions not counted) is classified
  without being asked; anything else is ignored silently, never answered. A message that mentions the bot is
  left to the ``app_mention`` listener, so it is classified once.
- In a DM, the message is classified and answered there; one without article text gets the usage line.

Each message is claimed once by channel and ts (``message:<channel>:<ts>``), whatever the event that carried it,
so a redelivered event, or any other event about the same message, never classifies it twice.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import App, Say

from bot.listeners.channels import submit_change
from bot.listeners.events import answer_once, over_rate
from bot.submit import JobSubmitter
from common.articles import clean_text, extract_urls, has_article, has_words, message_text
from common.jobs import ClassifyRequest
from store import newsroom
from ui.texts import DM_USAGE

log = logging.getLogger(__name__)

# Text without a link is taken as an article in a watched channel from this many characters on.
WATCH_MIN_TEXT_CHARS = 200
_CODE_BLOCK = re.compile(r"```.*?(?:```|$)", re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_EMOJI = re.compile(r":[a-z0-9_+'-]+:")


def without_code_and_emoji(text: str) -> str:
    """The message without code blocks, inline code and ``:emoji:``: none of them is article text."""
    return _EMOJI.sub(" ", _INLINE_CODE.sub(" ", _CODE_BLOCK.sub(" ", text)))


def watched_article(message: dict[str, Any]) -> str | None:
    """What to classify of a watched channel's message, or None when it does not look like an article.

    An article has a link, or at least :data:`WATCH_MIN_TEXT_CHARS` characters of text with words in it.
    """
    text = without_code_and_emoji(message_text(message))
    if extract_urls(text):
        return text
    cleaned = clean_text(text)
    if len(cleaned) >= WATCH_MIN_TEXT_CHARS and has_words(cleaned):
        return text
    return None


def is_new_post(event: dict[str, Any], bot_user_id: str | None) -> bool:
    """A person's new top-level message: no subtype (edits, deletions, joins…), no bot, not in a thread."""
    if event.get("subtype") or event.get("hidden") or event.get("bot_id") or event.get("bot_profile"):
        return False
    if not event.get("user") or event.get("user") == bot_user_id:
        return False
    thread_ts = event.get("thread_ts")
    return not thread_ts or thread_ts == event.get("ts")


def handle_message(
    event: dict[str, Any], body: dict[str, Any], submitter: JobSubmitter, say: Say, bot_user_id: str | None = None
) -> None:
    """Enqueue a watched channel's article or a DM; everything else is acked and ignored.

    Like the mention listener this runs before the ack: if enqueueing fails (Redis down) it raises, the event
    is answered 500 (unacked in Socket Mode), and Slack redelivers it.
    """
    if event.get("subtype") in ("channel_convert_to_private", "channel_convert_to_public"):
        # A channel made private or public: its watch's and routes' audience is checked again.
        submit_change(submitter, str(event["subtype"]), str(event.get("channel") or ""), str(body.get("event_id")))
        return
    if not is_new_post(event, bot_user_id):
        return
    channel = str(event.get("channel") or "")
    ts = str(event["ts"])
    delivery_key = f"message:{channel}:{ts}"
    if event.get("channel_type") == "im":
        if over_rate(submitter, event.get("user"), "dm", lambda note: say(text=note)):
            return
        text = without_code_and_emoji(message_text(event))
        if not has_article(text):
            answer_once(submitter, delivery_key, lambda: say(text=DM_USAGE))
            return
        request = ClassifyRequest(
            request_id=body["event_id"], text=text, channel=channel, user=event.get("user"), source="dm"
        )
        submitter.submit_classify(request, delivery_key=delivery_key)
        return
    if event.get("channel_type") not in ("channel", "group") or not channel:
        return
    if bot_user_id and f"<@{bot_user_id}" in str(event.get("text") or ""):
        return  # the app_mention event of the same message classifies it
    if newsroom.watch_of(submitter.connection, channel) is None:
        return
    article = watched_article(event)
    if article is None:
        log.debug("message %s in watched %s is not an article; ignored", ts, channel)
        return
    request = ClassifyRequest(
        request_id=body["event_id"],
        text=article,
        channel=channel,
        user=event.get("user"),
        thread_ts=ts,
        source="watch",
    )
    submitter.submit_classify(request, delivery_key=delivery_key)


def register(app: App) -> None:
    app.event("message")(handle_message)
