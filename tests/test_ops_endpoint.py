"""The operations endpoint: /healthz reflects the probe, /metrics exposes the product's metrics."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import redis

from telemetry import metrics
from telemetry.endpoint import Health, OpsServer


@pytest.fixture
def checks() -> dict[str, bool]:
    return {"redis": True, "model_loaded": True}


@pytest.fixture
def ops(checks: dict[str, bool]) -> Iterator[OpsServer]:
    server = OpsServer("127.0.0.1", 0, lambda: Health(checks=dict(checks), details={"model_version": "v1"})).start()
    yield server
    server.stop()


def test_healthz_is_200_when_every_check_passes_and_503_when_one_fails(ops: OpsServer, checks: dict[str, bool]) -> None:
    url = f"http://127.0.0.1:{ops.port}/healthz"
    ok = httpx.get(url, timeout=5)
    assert ok.status_code == 200
    assert ok.json() == {"ok": True, "checks": {"redis": True, "model_loaded": True}, "model_version": "v1"}

    checks["redis"] = False
    down = httpx.get(url, timeout=5)
    assert down.status_code == 503
    assert down.json()["checks"]["redis"] is False and down.json()["ok"] is False


def test_a_probe_that_raises_is_unhealthy_not_a_crash() -> None:
    def broken() -> Health:
        raise RuntimeError("boom")

    server = OpsServer("127.0.0.1", 0, broken).start()
    try:
        response = httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
        assert response.status_code == 503
        assert response.json()["error"] == "RuntimeError"
        assert httpx.get(f"http://127.0.0.1:{server.port}/nope", timeout=5).status_code == 404
    finally:
        server.stop()


def _sample(text: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def test_metrics_move_when_the_product_counts(ops: OpsServer) -> None:
    url = f"http://127.0.0.1:{ops.port}/metrics"
    before = httpx.get(url, timeout=5).text
    metrics.REQUESTS.labels(kind="mention", outcome="enqueued").inc()
    metrics.CONFIDENCE.observe(0.93)
    metrics.set_model_info("20260101-000000-abc", "bert")
    after = httpx.get(url, timeout=5).text
    kw = {"kind": "mention", "outcome": "enqueued"}
    assert _sample(after, "newsbot_requests_total", **kw) == _sample(before, "newsbot_requests_total", **kw) + 1
    assert (
        _sample(after, "newsbot_prediction_confidence_count")
        == _sample(before, "newsbot_prediction_confidence_count") + 1
    )
    assert _sample(after, "newsbot_model_info", version="20260101-000000-abc", model_type="bert") == 1.0


def test_queue_depth_is_read_from_redis_at_scrape_time(ops: OpsServer, redis_conn: redis.Redis) -> None:
    from rq import Queue

    from store.queues import SERIALIZER

    queue = Queue("classify", connection=redis_conn, serializer=SERIALIZER)
    metrics.watch_queue_depths(lambda: [("classify", queue.count)])
    url = f"http://127.0.0.1:{ops.port}/metrics"
    assert _sample(httpx.get(url, timeout=5).text, "newsbot_queue_depth", queue="classify") == 0.0
    queue.enqueue("worker.jobs.classify", {"x": 1})
    queue.enqueue("worker.jobs.classify", {"x": 2})
    assert _sample(httpx.get(url, timeout=5).text, "newsbot_queue_depth", queue="classify") == 2.0


def test_a_redis_outage_does_not_break_the_scrape(ops: OpsServer) -> None:
    def down() -> list[tuple[str, int]]:
        raise redis.ConnectionError("down")

    metrics.watch_queue_depths(down)
    response = httpx.get(f"http://127.0.0.1:{ops.port}/metrics", timeout=5)
    assert response.status_code == 200
    assert "newsbot_requests_total" in response.text


def test_idle_clients_hold_at_most_the_thread_cap_and_are_dropped(capfd: pytest.CaptureFixture[str]) -> None:
    """100 connections that send nothing used to hold 100 threads for ever (ThreadingHTTPServer, no timeout): now at
    most ``max_threads`` handle requests at once, the others are closed unanswered, a silent one is dropped after
    ``idle_timeout_s``, and then the endpoint answers again. Nothing is printed on stderr."""
    import socket
    import threading

    from testkit.waiting import wait_until

    ops = OpsServer("127.0.0.1", 0, lambda: Health(checks={"ok": True}), max_threads=4, idle_timeout_s=1.0).start()
    baseline = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", ops.port), timeout=10) for _ in range(100)]
    try:
        # The accept loop gets through them in milliseconds; give it two seconds to show more threads than the cap.
        with pytest.raises(AssertionError, match="timed out"):
            wait_until(lambda: threading.active_count() > baseline + 4, "more threads than the cap", 2)
        for sock in idle:  # each is closed: unanswered beyond the cap, or at its idle timeout
            assert sock.recv(1024) == b""
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{ops.port}/healthz", timeout=2).status_code == 200,
            "the endpoint to answer once the idle clients are gone",
            10,
        )
    finally:
        for sock in idle:
            sock.close()
        ops.stop()
    assert "Traceback" not in capfd.readouterr().err


def test_a_job_rq_finds_abandoned_is_counted_and_registries_are_reported(redis_conn: redis.Redis) -> None:
    """RQ's maintenance (StartedJobRegistry.cleanup, as every worker runs it with its exception handlers) finds a
    job whose worker died: newsbot_rq_abandoned_jobs_total{queue} counts it, and newsbot_rq_jobs shows it failed."""
    from rq import Queue
    from rq.job import JobStatus
    from rq.registry import StartedJobRegistry

    from store.queues import registry_counts
    from worker.batching import count_abandoned

    queue = Queue("classify", connection=redis_conn)
    job = queue.enqueue("builtins.len", "x")
    queue.remove(job)
    job.set_status(JobStatus.STARTED)
    registry = StartedJobRegistry(queue.name, connection=redis_conn)
    redis_conn.zadd(registry.key, {f"{job.id}:dead-execution": 1})  # its lease ran out long ago
    before = metrics.ABANDONED_JOBS.labels(queue="classify")._value.get()
    registry.cleanup(exception_handlers=[count_abandoned])
    assert metrics.ABANDONED_JOBS.labels(queue="classify")._value.get() == before + 1
    assert ("classify", "failed", 1) in registry_counts(redis_conn)
