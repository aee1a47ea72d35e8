"""The Slack Web API client of every process: the bot's Bolt app and the workers build theirs here.

One builder, so the bot and the workers answer Slack's failures alike: rate limits (HTTP 429 with Retry-After)
are honoured by slack_sdk's RateLimitErrorRetryHandler, 5xx answers and dropped connections retried by its
ServerErrorRetryHandler and ConnectionErrorRetryHandler (with back-off); each call has SLACK_TIMEOUT_S.
Whatever still fails raises to the caller (a worker's job then retries through RQ).

It imports slack_sdk only: the bot image (no torch) and the workers both use it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from redis import Redis
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from common.settings import Settings
from store.slack import DEAD_TOKEN_ERRORS, token_revoked  # readiness turns false on these, not on a network failure

log = logging.getLogger(__name__)

# Retries of one call, after its first try: a 429 waits Retry-After each time; a 5xx or a dropped connection
# backs off (slack_sdk's default: about 0.5 s, 1 s, … with jitter).
RATE_LIMIT_RETRIES = 3
SERVER_ERROR_RETRIES = 2
CONNECTION_ERROR_RETRIES = 2

# How often readiness asks auth.test again (tier 4: 100+ calls a minute; this is one every 5 minutes).
TOKEN_CHECK_INTERVAL_S = 300.0


class CallCounter(RetryHandler):
    """Counts every attempt of every Web API call in ``newsbot_slack_api_calls_total{method, outcome}`` (and
    Slack's error codes in ``newsbot_slack_api_errors_total``), and never retries anything itself.

    slack_sdk asks the retry handlers, in order, about every answer (200s included) and every connection error,
    until one retries; this one is first, so it sees them all: the bot's per-request clients (Bolt copies the
    handlers) as well as the workers'."""

    def __init__(self) -> None:
        super().__init__(max_retry_count=1_000_000)  # never the reason it is not asked

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        from telemetry import metrics

        method = request.url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or "unknown"
        if response is None:
            outcome = "connection_error"
        elif response.status_code == 429:
            outcome = "ratelimited"
        elif response.status_code >= 500:
            outcome = "server_error"
        elif isinstance(response.body, dict) and response.body.get("ok") is False:
            outcome = "error"
            metrics.SLACK_ERRORS.labels(method=method, error=str(response.body.get("error") or "unknown")[:64]).inc()
        else:
            outcome = "ok"
        metrics.SLACK_CALLS.labels(method=method, outcome=outcome).inc()
        return False


def retry_handlers() -> list[RetryHandler]:
    """Fresh handlers for one client (a handler keeps no state between calls, but each client gets its own): the
    call counter first, then the retries."""
    return [
        CallCounter(),
        RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        ServerErrorRetryHandler(max_retry_count=SERVER_ERROR_RETRIES),
        ConnectionErrorRetryHandler(max_retry_count=CONNECTION_ERROR_RETRIES),
    ]


def web_client(settings: Settings) -> WebClient:
    """The Web API client with the bot token, SLACK_API_URL, SLACK_TIMEOUT_S and the retry handlers."""
    return WebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=math.ceil(settings.slack_timeout_s),  # slack_sdk takes whole seconds; never round down to 0
        retry_handlers=retry_handlers(),
    )


class SlackTokenCheck:
    """Whether the bot token still works, for readiness: auth.test, asked at most every ``interval_s``.

    Calling it never waits for Slack: a stale answer starts a refresh in a background thread and the last known
    answer is returned (True until Slack has said otherwise). Only an answer naming a dead token
    (``DEAD_TOKEN_ERRORS``) makes it False; a timeout or a 5xx keeps the last answer (that is Slack's outage,
    not this process's).
    """

    def __init__(self, client: WebClient, interval_s: float = TOKEN_CHECK_INTERVAL_S) -> None:
        self._client = client
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._valid = True
        self._checked_at = -math.inf
        self._refreshing = False
        self.last_error: str | None = None

    def refresh(self) -> bool:
        """Ask auth.test now; the answer, as :meth:`__call__` will give it."""
        try:
            self._client.auth_test()
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "")
            if error in DEAD_TOKEN_ERRORS:
                if self._valid:
                    log.error("the Slack bot token no longer works (auth.test: %s): set a valid SLACK_BOT_TOKEN", error)
                self._valid, self.last_error = False, error
            else:
                log.warning("auth.test failed (%s); keeping the last answer on the token", error or exc)
        except Exception as exc:  # noqa: BLE001 - no answer (timeout, refused): keep the last one
            log.warning("auth.test did not answer (%s); keeping the last answer on the token", type(exc).__name__)
        else:
            if not self._valid:
                log.info("the Slack bot token works again")
            self._valid, self.last_error = True, None
        finally:
            with self._lock:
                self._checked_at = time.monotonic()
                self._refreshing = False
        return self._valid

    def __call__(self) -> bool:
        with self._lock:
            stale = time.monotonic() - self._checked_at >= self._interval_s
            start = stale and not self._refreshing
            if start:
                self._refreshing = True
        if start:
            threading.Thread(target=self.refresh, name="slack-token-check", daemon=True).start()
        return self._valid


def token_alive(check: Callable[[], bool], connection: Redis, token: str | None) -> Callable[[], bool]:
    """The ``slack_token`` readiness check: auth.test has not called the token dead (``check``), and no process
    recorded it revoked in Redis (a worker's job or the bot's ``app_uninstalled``/``tokens_revoked`` event:
    ``store.slack``), which turns every process unready at once, not at its next auth.test."""

    def alive() -> bool:
        return check() and token_revoked(connection, token) is None

    return alive
