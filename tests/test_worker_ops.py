"""A real ``python -m worker`` process's operations surface: /healthz on its --ops-port (model loaded, Redis
reachable, the Slack token valid, the version served; 503 once Redis is gone, while /livez stays 200), a train
worker healthy without a model, --ops-port 0 serving nothing, and its log lines as JSON (LOG_FORMAT=json) carrying
the job id and the model version."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from bot.submit import JobSubmitter
from common.jobs import ClassifyRequest
from testkit.fake_slack import FakeSlack
from testkit.processes import product_env, start_worker
from testkit.redis_server import RedisServer, free_port
from testkit.waiting import wait_until

VERSION = "20260101-000000-tiny0001"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone: it is stopped mid-test."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def healthz(port: int) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)


def test_a_classify_worker_is_healthy_with_its_model_and_unhealthy_without_redis(
    tmp_path: Path, own_redis: RedisServer, fake_slack: FakeSlack, model_registry: Path
) -> None:
    env = product_env(REDIS_URL=own_redis.url, SLACK_API_URL=fake_slack.api_url, MODEL_DIR=str(model_registry))
    port = free_port()
    worker = start_worker(env, tmp_path / "run", "--ops-port", str(port))
    try:
        ok = healthz(port)
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["ok"] is True
        assert body["checks"] == {"redis": True, "model_loaded": True, "slack_token": True}
        assert body["live"] == {"job_loop": True, "heartbeat": True}
        assert body["model_version"] == VERSION and body["queues"] == ["classify"]
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert f'newsbot_model_info{{model_type="bert",version="{VERSION}"}} 1.0' in metrics

        own_redis.stop()
        wait_until(lambda: healthz(port).status_code == 503, "/healthz to answer 503 without Redis")
        down = healthz(port).json()
        assert down["checks"]["redis"] is False and down["checks"]["model_loaded"] is True
        # Alive (its loop keeps turning, trying to reconnect) but not ready: restart nothing, send it nothing.
        assert httpx.get(f"http://127.0.0.1:{port}/livez", timeout=5).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 503
        assert worker.alive()
    finally:
        worker.stop()


def test_a_train_worker_is_healthy_without_a_model(
    tmp_path: Path, redis_server: RedisServer, redis_conn: redis.Redis, fake_slack: FakeSlack
) -> None:
    empty = tmp_path / "no-models"
    empty.mkdir()
    env = product_env(REDIS_URL=redis_server.url, SLACK_API_URL=fake_slack.api_url, MODEL_DIR=str(empty))
    port = free_port()
    worker = start_worker(env, tmp_path / "run", "--queues", "train", "--ops-port", str(port), name="train-worker")
    try:
        response = healthz(port)
        assert response.status_code == 200, response.text
        assert response.json()["checks"] == {"redis": True, "slack_token": True}
        assert response.json()["model_version"] is None
    finally:
        worker.stop()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_worker_log_lines_in_json_carry_the_job_id_and_the_model_version(
    tmp_path: Path, redis_server: RedisServer, redis_conn: redis.Redis, fake_slack: FakeSlack, model_registry: Path
) -> None:
    env = product_env(
        REDIS_URL=redis_server.url,
        SLACK_API_URL=fake_slack.api_url,
        MODEL_DIR=str(model_registry),
        LOG_FORMAT="json",
        OPS_PORT=str(port := free_port()),
    )
    worker = start_worker(env, tmp_path / "run", "--ops-port", "0")
    try:
        with pytest.raises(httpx.ConnectError):
            healthz(port)  # OPS_PORT names a port, but --ops-port 0 wins: no endpoint
        # A mention with nothing to classify (the bot never sends one; enqueued here directly): the job logs
        # that it refused it, and tells the user.
        request = ClassifyRequest(
            request_id="EvJson1", text="<@UBOT>", channel="C1", user="U1", thread_ts="1.0", source="mention"
        )
        job_id = JobSubmitter(redis_conn).submit_classify(request, "event:EvJson1")
        assert job_id is not None
        fake_slack.wait_for_calls("chat.postMessage", 1, timeout=60)
        wait_until(lambda: any(r.get("job_id") == job_id for r in json_lines(worker.log())), "the job's log line")
    finally:
        worker.stop()
    records = json_lines(worker.log())
    assert records, worker.log()
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    refused = [r for r in records if "refused" in r["message"]]
    assert refused, worker.log()
    assert refused[0]["job_id"] == job_id and refused[0]["model_version"] == VERSION
    assert refused[0]["logger"] == "worker.jobs" and refused[0]["level"] == "INFO"
    # Lines outside a job carry no job id.
    assert any("job_id" not in r for r in records)
