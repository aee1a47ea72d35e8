"""Posting replies to Slack through the Web API (rate limits honoured by slack_sdk's retry handler)."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from common.jobs import ClassifyRequest, ClassifyResult
from common.settings import Settings
from worker.replies import error_text, result_text


def web_client(settings: Settings) -> WebClient:
    return WebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=15,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=3), ConnectionErrorRetryHandler(max_retry_count=2)],
    )


class SlackReplier:
    """Replies in the thread of the message that asked."""

    def __init__(self, client: WebClient) -> None:
        self.client = client

    def post_result(self, request: ClassifyRequest, result: ClassifyResult) -> None:
        self.client.chat_postMessage(channel=request.channel, thread_ts=request.thread_ts, text=result_text(result))

    def post_error(self, request: ClassifyRequest, user_message: str, reference: str | None = None) -> None:
        self.client.chat_postMessage(
            channel=request.channel, thread_ts=request.thread_ts, text=error_text(user_message, reference)
        )
