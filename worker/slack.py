"""Posting replies to Slack: chat.postMessage in the asking thread, or the slash command's response_url.

Rate limits (HTTP 429 with Retry-After) are honoured by slack_sdk's RateLimitErrorRetryHandler, 5xx answers
and dropped connections retried by its ServerErrorRetryHandler and ConnectionErrorRetryHandler (with
back-off); whatever still fails raises, and the job's RQ Retry takes over.
"""

from __future__ import annotations

import json
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient

from common.jobs import ClassifyRequest
from common.settings import Settings


def _retry_handlers() -> list[Any]:
    return [
        RateLimitErrorRetryHandler(max_retry_count=3),
        ServerErrorRetryHandler(max_retry_count=2),
        ConnectionErrorRetryHandler(max_retry_count=2),
    ]


def web_client(settings: Settings) -> WebClient:
    return WebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=int(settings.slack_timeout_s),
        retry_handlers=_retry_handlers(),
    )


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
        """Post ``message`` (``text`` and ``blocks``) as the answer to ``request``."""
        if request.response_url:
            webhook = WebhookClient(request.response_url, timeout=self.client.timeout, retry_handlers=_retry_handlers())
            response = webhook.send(
                text=message["text"], blocks=message.get("blocks"), response_type=request.response_type
            )
            if response.status_code != 200 or _refused(response.body):
                raise SlackDeliveryError(f"response_url answered HTTP {response.status_code}: {response.body[:200]}")
            return ""
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
            raise SlackDeliveryError(f"chat.postMessage failed: {exc.response.get('error')}") from exc
        return str(answer.get("ts") or "")
