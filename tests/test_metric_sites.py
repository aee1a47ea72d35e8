"""Where the product counts: each outcome of an enqueue, feedback stored, fetch reasons, training runs, and the
model served. Real Redis; the figures are read from the process's Prometheus registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from bot.submit import JobSubmitter
from common.exceptions import (
    LinkError,
    LinkRefusedError,
    LinkUnreachableError,
    TrainingInProgressError,
    UnsupportedContentError,
    UnusableArticleError,
)
from common.jobs import ClassifyRequest, RetrainRequest
from store import classifications
from store.classifications import ClassificationRecord
from store.feedback import FeedbackStore
from telemetry import metrics
from testkit.redis_server import RedisServer
from worker.jobs import training_run


def sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def requests_total(kind: str, outcome: str) -> float:
    return sample("newsbot_requests_total", kind=kind, outcome=outcome)


def command(trigger: str) -> ClassifyRequest:
    return ClassifyRequest(request_id=trigger, text="記事の本文", channel="C1", user="U1", source="command")


def test_enqueued_then_duplicate_are_counted_by_source(redis_conn: redis.Redis) -> None:
    submitter = JobSubmitter(redis_conn)
    enqueued, duplicate = requests_total("command", "enqueued"), requests_total("command", "duplicate")
    assert submitter.submit_classify(command("T1"), "command:T1") is not None
    assert submitter.submit_classify(command("T1"), "command:T1") is None
    assert requests_total("command", "enqueued") == enqueued + 1
    assert requests_total("command", "duplicate") == duplicate + 1


def test_a_second_training_is_refused_and_counted(redis_conn: redis.Redis) -> None:
    submitter = JobSubmitter(redis_conn)
    refused = requests_total("retrain", "refused")
    first = RetrainRequest(request_id="R1", user="U1", channel="C1")
    assert submitter.submit_retrain(first, "command:R1", 600) is not None
    with pytest.raises(TrainingInProgressError):
        submitter.submit_retrain(RetrainRequest(request_id="R2", user="U1", channel="C1"), "command:R2", 600)
    assert requests_total("retrain", "refused") == refused + 1


def test_redis_down_is_queue_unavailable_and_an_enqueue_failure(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    connection = redis.Redis.from_url(server.url, socket_connect_timeout=1)
    submitter = JobSubmitter(connection)
    server.stop()
    unavailable, failures = (
        requests_total("shortcut", "queue_unavailable"),
        sample("newsbot_enqueue_failures_total", kind="shortcut"),
    )
    request = ClassifyRequest(request_id="S1", text="本文", channel="C1", user="U1", thread_ts="1.0", source="shortcut")
    with pytest.raises(redis.RedisError):
        submitter.submit_classify(request, "shortcut:S1")
    assert requests_total("shortcut", "queue_unavailable") == unavailable + 1
    assert sample("newsbot_enqueue_failures_total", kind="shortcut") == failures + 1


def test_stored_feedback_is_counted_correct_or_wrong(redis_conn: redis.Redis) -> None:
    classifications.put_classification(
        redis_conn,
        ClassificationRecord(
            record_id="rec1", title="t", body="b", url="", slug="sports-watch", model_version="v1", channel="C1"
        ),
    )
    store = FeedbackStore(redis_conn)
    correct, wrong = (
        sample("newsbot_feedback_total", answer="correct"),
        sample("newsbot_feedback_total", answer="wrong"),
    )
    store.record("rec1", "U1", "sports-watch")
    store.record("rec1", "U2", "it-life-hack")
    assert sample("newsbot_feedback_total", answer="correct") == correct + 1
    assert sample("newsbot_feedback_total", answer="wrong") == wrong + 1


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (LinkRefusedError("http://10.0.0.1/"), "refused"),
        (LinkUnreachableError("http://x/"), "unreachable"),
        (UnsupportedContentError("http://x/a.pdf"), "unsupported"),
        (UnusableArticleError("http://x/"), "unusable"),
        (LinkError("http://x/"), "other"),
    ],
)
def test_fetch_reasons_are_a_small_fixed_set(error: LinkError, reason: str) -> None:
    assert metrics.fetch_reason(error) == reason


@pytest.mark.parametrize(
    ("result", "outcome"),
    [({"promoted": True}, "promoted"), ({"promoted": False}, "kept"), ({"error": "X", "message": "m"}, "failed")],
)
def test_training_runs_are_counted_by_outcome(result: dict[str, Any], outcome: str) -> None:
    before = sample("newsbot_training_runs_total", outcome=outcome)
    assert training_run(lambda _payload: result)({}) == result
    assert sample("newsbot_training_runs_total", outcome=outcome) == before + 1


def test_a_training_that_raises_is_counted_failed() -> None:
    def crash(_payload: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("out of memory")

    before = sample("newsbot_training_runs_total", outcome="failed")
    with pytest.raises(RuntimeError):
        training_run(crash)({})
    assert sample("newsbot_training_runs_total", outcome="failed") == before + 1
