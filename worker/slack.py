"""Posting replies to Slack: chat.postMessage in the asking thread, or the slash command's response_url.

Also reading a thread's first message (conversations.replies), for an empty mention inside a thread.

The client and the response_url webhooks retry as the bot's own client does (``bot/slack_client.py``: rate
limits honoured, 5xx answers and dropped connections retried with back-off); whatever still fails raises, and
the job's RQ Retry takes over. A dead token (``invalid_auth``,
``token_revoked``, ``account_inactive``: :func:`dead_token_reason`) is never retried: the worker holds the job
back in the queue and waits for the token (``worker.batching``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject
from slack_sdk.webhook import WebhookClient

from bot.slack_client import retry_handlers, web_client
from common.exceptions import BotNotInChannelError, ThreadParentError
from common.jobs import ClassifyRequest
from store.slack import DEAD_TOKEN_ERRORS

log = logging.getLogger(__name__)

# What chat.postMessage answers in a channel the bot is not in (a private one is not even found).
NOT_IN_CHANNEL = frozenset({"not_in_channel", "channel_not_found"})


__all__ = ["SlackDeliveryError", "SlackReplier", "thread_parent", "web_client", "with_invite_hint"]


def _refused(body: str) -> bool:
    """Whether a response_url answer body says ``{"ok": false, ...}`` (a refusal sent with HTTP 200)."""
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    return isinstance(answer, dict) and answer.get("ok") is False


class SlackDeliveryError(RuntimeError):
    """Slack did not accept a reply (after slack_sdk's own retries)."""


class SlackReplier:
    """Replies where the request came from; returns the ts of the posted message ("" for response_url)."""

    def __init__(self, client: WebClient) -> None:
        self.client = client

    def post(self, request: ClassifyRequest, message: dict[str, Any]) -> str:
        """Post ``message`` (``text`` and ``blocks``) as the answer to ``request``.

        A message shortcut on a channel the bot is not in cannot be answered in the thread (``not_in_channel``,
        or ``channel_not_found`` for a private one): the answer then goes through the shortcut's own
        response_url (``fallback_url``), ephemeral to the user, with how to invite the bot.
        """
        if request.response_url:
            return self._send(request.response_url, message, request.response_type)
        try:
            answer = self.client.chat_postMessage(
                channel=request.channel,
                thread_ts=request.thread_ts,
                text=message["text"],
                blocks=message.get("blocks"),
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            error = exc.response.get("error")
            if error in NOT_IN_CHANNEL and request.fallback_url:
                log.info("chat.postMessage in %s refused (%s): answering via response_url", request.channel, error)
                return self._send(request.fallback_url, with_invite_hint(message), "ephemeral", replace_original=False)
            raise SlackDeliveryError(f"chat.postMessage failed: {error}") from exc
        return str(answer.get("ts") or "")

    def _send(self, url: str, message: dict[str, Any], response_type: str, replace_original: bool | None = None) -> str:
        webhook = WebhookClient(url, timeout=self.client.timeout, retry_handlers=retry_handlers())
        response = webhook.send(
            text=message["text"],
            blocks=message.get("blocks"),
            response_type=response_type,
            replace_original=replace_original,
        )
        if response.status_code != 200 or _refused(response.body):
            raise SlackDeliveryError(f"response_url answered HTTP {response.status_code}: {response.body[:200]}")
        return ""


def with_invite_hint(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` with a note that the bot is not in the channel and how to invite it."""
    hint = BotNotInChannelError.user_message
    note = ContextBlock(elements=[MarkdownTextObject(text=hint)]).to_dict()
    return {"text": f"{message['text']}\n{hint}", "blocks": [*(message.get("blocks") or []), note]}


# conversations.replies answers these for a thread the bot cannot read: told to the user, not retried.
_UNREADABLE_THREAD = frozenset({*NOT_IN_CHANNEL, "thread_not_found", "message_not_found", "missing_scope"})


def thread_parent(client: WebClient, channel: str, thread_ts: str | None) -> dict[str, Any]:
    """The first message of a thread (conversations.replies); :class:`ThreadParentError` when it cannot be read."""
    if not thread_ts:
        raise ThreadParentError(f"no thread in {channel}")
    try:
        answer = client.conversations_replies(channel=channel, ts=thread_ts, limit=1, inclusive=True)
    except SlackApiError as exc:
        error = exc.response.get("error")
        if error in _UNREADABLE_THREAD:
            raise ThreadParentError(f"conversations.replies {channel}/{thread_ts}: {error}") from exc
        raise
    messages: list[dict[str, Any]] = answer.get("messages") or []
    parent = next((m for m in messages if m.get("ts") == thread_ts), None)
    if parent is None:
        raise ThreadParentError(f"no message {thread_ts} in {channel}")
    return parent


def dead_token_reason(exc: BaseException | None) -> str | None:
    """Slack's error when ``exc`` (or an exception it was raised from) says the token is dead, else None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, SlackApiError):
            error = exc.response.get("error")
            if error in DEAD_TOKEN_ERRORS:
                return str(error)
        exc = exc.__cause__ or exc.__context__
    return None


def check_token(client: WebClient) -> str | None:
    """Ask auth.test whether the token works: None when it does, Slack's error when the token is dead. Raises
    when Slack cannot say (unreachable, another error)."""
    try:
        client.auth_test()
    except SlackApiError as exc:
        reason = dead_token_reason(exc)
        if reason is None:
            raise
        return reason
    return None
