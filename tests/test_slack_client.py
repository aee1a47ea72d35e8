"""The bot's own Slack client retries as the workers' does (one builder, bot/slack_client.py), over real HTTP
against the fake Slack; and the token check that readiness uses."""

from __future__ import annotations

import logging

import pytest
import redis
from slack_sdk.errors import SlackApiError

from bot.app import build_app
from bot.slack_client import SlackTokenCheck, web_client
from bot.submit import JobSubmitter
from common.settings import Settings
from testkit.fake_slack import FakeSlack, Fault
from testkit.waiting import wait_until


def settings_for(fake_slack: FakeSlack, **overrides: object) -> Settings:
    return Settings(_env_file=None, slack_bot_token="xoxb-test", slack_api_url=fake_slack.api_url, **overrides)  # type: ignore[call-arg, arg-type]


@pytest.mark.parametrize(
    "fault", [Fault(status=429, headers={"Retry-After": "0"}), Fault(status=503)], ids=["rate-limited", "server-error"]
)
def test_the_bots_client_retries_a_429_or_a_5xx_and_then_succeeds(
    redis_conn: redis.Redis, fake_slack: FakeSlack, fault: Fault
) -> None:
    app = build_app(settings_for(fake_slack), JobSubmitter(redis_conn))
    fake_slack.fail("chat.postEphemeral", fault)
    answer = app.client.chat_postEphemeral(channel="C1", user="U1", text="hello")
    assert answer["ok"] is True
    assert [c.status for c in fake_slack.calls_to("chat.postEphemeral")] == [fault.status, 200]


def test_the_bot_and_the_workers_build_the_same_client(redis_conn: redis.Redis, fake_slack: FakeSlack) -> None:
    from worker.slack import web_client as workers_client

    settings = settings_for(fake_slack, slack_timeout_s=7.5)
    bots = build_app(settings, JobSubmitter(redis_conn)).client
    workers = workers_client(settings)

    def kinds(client: object) -> list[tuple[str, int]]:
        return [(type(h).__name__, h.max_retry_count) for h in client.retry_handlers]  # type: ignore[attr-defined]

    assert kinds(bots) == kinds(workers) == kinds(web_client(settings))
    assert {name for name, _ in kinds(bots)} == {
        "CallCounter",
        "RateLimitErrorRetryHandler",
        "ServerErrorRetryHandler",
        "ConnectionErrorRetryHandler",
    }
    assert bots.timeout == workers.timeout == 8  # SLACK_TIMEOUT_S, rounded up to slack_sdk's whole seconds


def test_a_client_with_retries_spent_raises(fake_slack: FakeSlack) -> None:
    client = web_client(settings_for(fake_slack))
    fake_slack.fail("chat.postMessage", *[Fault(status=503)] * 3)
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="C1", text="hello")
    assert len(fake_slack.calls_to("chat.postMessage")) == 3  # the first try and 2 retries


def test_the_token_check_turns_false_on_a_dead_token_only(
    fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    check = SlackTokenCheck(web_client(settings_for(fake_slack)), interval_s=0)
    assert check.refresh() is True

    fake_slack.fail("auth.test", *[Fault(status=503)] * 3)
    assert check.refresh() is True  # Slack's outage is not a dead token

    fake_slack.auth_error = "token_revoked"
    with caplog.at_level(logging.ERROR, logger="bot.slack_client"):
        assert check.refresh() is False
    assert "token_revoked" in caplog.text and "SLACK_BOT_TOKEN" in caplog.text
    assert check() is False  # the last answer, while a refresh runs in the background

    fake_slack.auth_error = None
    wait_until(check, "the token check to see the token work again")


def test_every_call_attempt_is_counted_by_method_and_outcome(fake_slack: FakeSlack) -> None:
    """newsbot_slack_api_calls_total: a 429 then a success count as ratelimited and ok; Slack's ok: false as error
    with its code in newsbot_slack_api_errors_total."""
    from telemetry import metrics

    def count(method: str, outcome: str) -> float:
        return float(metrics.SLACK_CALLS.labels(method=method, outcome=outcome)._value.get())

    client = web_client(settings_for(fake_slack))
    before = {o: count("chat.postMessage", o) for o in ("ok", "ratelimited", "error")}
    fake_slack.fail("chat.postMessage", Fault(status=429, headers={"Retry-After": "0"}))
    client.chat_postMessage(channel="C1", text="x")
    fake_slack.fail("chat.postMessage", Fault(error="channel_not_found"))
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="C1", text="x")
    assert count("chat.postMessage", "ratelimited") == before["ratelimited"] + 1
    assert count("chat.postMessage", "ok") == before["ok"] + 1
    assert count("chat.postMessage", "error") == before["error"] + 1
    errors = metrics.SLACK_ERRORS.labels(method="chat.postMessage", error="channel_not_found")._value.get()
    assert errors >= 1
