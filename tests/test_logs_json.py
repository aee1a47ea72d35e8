"""LOG_FORMAT=json: one JSON object per line, with the request's context, and secrets redacted as in text."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from common.jobs import CLASSIFY_JOB, RETRAIN_JOB, ROLLBACK_JOB, ROUTE_JOB, STATUS_JOB
from common.logs import JsonFormatter, bind_log_context, configure_logging, log_context
from testkit.fake_slack import FakeSlack
from testkit.signing import event_body

BOT_TOKEN = "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp"
SIGNING_SECRET = "8f742231b10e8888abcd0123456789ef"


@pytest.fixture
def json_logging() -> Iterator[None]:
    """Restores the root logger after a test that calls configure_logging (in its body, once capsys is on)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    bind_log_context()  # whatever an earlier test's in-process Bolt request left bound to this thread
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_each_line_is_a_json_object_with_the_context_when_known(
    json_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", "json")
    assert all(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)
    log = logging.getLogger("test.json")
    log.info("before")
    with log_context(event_id="Ev1", job_id=None):
        with log_context(job_id="classify-abc", model_version="20260101-000000-x"):
            log.warning("inside %s", "job")
        log.info("outside the job")
    log.info("after")
    before, inside, outside, after = lines(capsys.readouterr().err)
    assert set(before) == {"time", "level", "logger", "message"} and before["message"] == "before"
    assert inside["message"] == "inside job" and inside["level"] == "WARNING" and inside["logger"] == "test.json"
    assert (inside["event_id"], inside["job_id"], inside["model_version"]) == (
        "Ev1",
        "classify-abc",
        "20260101-000000-x",
    )
    assert outside["event_id"] == "Ev1" and "job_id" not in outside and "model_version" not in outside
    assert "event_id" not in after


def test_tokens_are_redacted_in_json_messages_and_tracebacks(
    json_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", "json")
    log = logging.getLogger("test.json.redact")
    log.info("calling Slack with %s and %s", BOT_TOKEN, SIGNING_SECRET)
    try:
        raise PermissionError(f"invalid_auth for {BOT_TOKEN}")
    except PermissionError:
        log.exception("Slack refused")
    err = capsys.readouterr().err
    assert BOT_TOKEN not in err and SIGNING_SECRET not in err and "AbCdEfGh" not in err
    message, failure = lines(err)
    assert message["message"] == "calling Slack with xoxb-*** and ***"
    assert "PermissionError: invalid_auth for xoxb-***" in failure["exc_info"]


def test_the_bot_logs_a_request_with_its_slack_event_id(
    json_logging: None, capsys: pytest.CaptureFixture[str], redis_conn: redis.Redis, fake_slack: FakeSlack
) -> None:
    from slack_bolt import BoltRequest

    from bot.app import build_app
    from bot.submit import JobSubmitter
    from common.settings import Settings

    settings = Settings(slack_bot_token="xoxb-test", slack_api_url=fake_slack.api_url)
    app = build_app(settings, JobSubmitter(redis_conn))
    configure_logging("INFO", "json")
    event = {"type": "app_mention", "user": "U1", "text": "<@UBOT> 記事の本文です", "ts": "1.0", "channel": "C1"}
    body = event_body(event, event_id="EvJsonBot")
    response = app.dispatch(BoltRequest(body=body.decode(), headers={"content-type": ["application/json"]}))
    assert response.status == 200
    enqueued = [r for r in lines(capsys.readouterr().err) if r["message"].startswith("enqueued ")]
    assert len(enqueued) == 1 and enqueued[0]["event_id"] == "EvJsonBot", enqueued


@pytest.mark.parametrize("path", [CLASSIFY_JOB, RETRAIN_JOB, STATUS_JOB, ROLLBACK_JOB, ROUTE_JOB])
def test_every_job_function_logs_in_its_jobs_context(path: str) -> None:
    """Each function RQ runs is wrapped by worker.jobs.in_job_context (its job id and model version in each line)."""
    import importlib

    from worker.jobs import in_job_context

    module, name = path.rsplit(".", 1)
    func = getattr(importlib.import_module(module), name)
    assert func.__code__ is in_job_context(lambda payload: payload).__code__, f"{path} does not log its job id"
