"""Health answers an operator and an orchestrator can act on: liveness apart from readiness, no internals in a
public answer, and a taken ops port that never stops a process. In-process: the endpoint, the probes and the
worker's job loop clock, with the session redis-server and the fake Slack."""

from __future__ import annotations

import json
import logging
from typing import Any
from wsgiref.util import setup_testing_defaults

import httpx
import pytest
import redis

from bot.app import build_app
from bot.server import make_wsgi_app
from bot.submit import JobSubmitter
from common.settings import Settings
from testkit.fake_slack import FakeSlack
from testkit.redis_server import free_port


def unreachable_redis() -> tuple[redis.Redis, int]:
    """A client of a port nothing listens on, that does not retry (redis-py's default backs off for seconds)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    port = free_port()
    return redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)), port


def get(wsgi: Any, path: str) -> tuple[str, dict[str, Any]]:
    environ: dict[str, Any] = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    seen: dict[str, str] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"] = status

    body = b"".join(wsgi(environ, start_response))
    return seen["status"], json.loads(body)


# -- item 4: no internals in the bot's public /healthz --------------------------------------------------------


def test_the_slack_ports_healthz_says_unreachable_and_logs_where(
    fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    down, port = unreachable_redis()
    settings = Settings(_env_file=None, slack_bot_token="xoxb-test", slack_api_url=fake_slack.api_url)  # type: ignore[call-arg]
    wsgi = make_wsgi_app(build_app(settings, JobSubmitter(down)), down, "secret")
    with caplog.at_level(logging.WARNING, logger="bot.server"):
        status, body = get(wsgi, "/healthz")
    assert status.startswith("503")
    assert body == {"status": "degraded", "redis": "unreachable"}
    assert str(port) not in json.dumps(body)
    assert str(port) in caplog.text  # the detail is in the log, for the operator


# -- item 1: a taken ops port never stops a process -----------------------------------------------------------


def test_a_second_endpoint_on_a_taken_port_logs_one_line_and_the_process_works_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from telemetry.endpoint import Health, serve_ops

    first = serve_ops("127.0.0.1", 0, lambda: Health(checks={"redis": True}))
    assert first is not None
    try:
        with caplog.at_level(logging.WARNING, logger="telemetry.endpoint"):
            second = serve_ops("127.0.0.1", first.port, lambda: Health(checks={"redis": True}), setting="--ops-port")
        assert second is None  # no exception: the caller goes on
        lines = [r.getMessage() for r in caplog.records if r.name == "telemetry.endpoint"]
        assert len(lines) == 1
        assert f":{first.port} is taken" in lines[0] and "--ops-port" in lines[0]
        assert httpx.get(f"http://127.0.0.1:{first.port}/healthz", timeout=5).status_code == 200  # the first serves on
    finally:
        first.stop()


def test_a_worker_binds_its_ops_port_before_loading_the_model_and_survives_a_taken_one(
    monkeypatch: pytest.MonkeyPatch, fake_slack: FakeSlack, redis_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """``python -m worker`` in-process (burst mode) with its ops port held by another server: the one line comes
    before the model load starts, then it loads, serves the (empty) queue and exits 0."""
    from telemetry.endpoint import Health, OpsServer
    from worker import __main__ as worker_main
    from worker.classifier import ModelService

    def taken_lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "telemetry.endpoint" and "taken" in r.getMessage()]

    lines_at_load: list[int] = []
    monkeypatch.setattr(ModelService, "load", lambda self: lines_at_load.append(len(taken_lines())))
    monkeypatch.setattr(worker_main, "configure_logging", lambda *args: None)  # keep caplog's handler
    for name, value in {
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_API_URL": fake_slack.api_url,
        "REDIS_URL": redis_server.url,
        "OPS_HOST": "127.0.0.1",
    }.items():
        monkeypatch.setenv(name, value)
    holder = OpsServer("127.0.0.1", 0, lambda: Health(checks={})).start()
    try:
        with caplog.at_level(logging.INFO):
            code = worker_main.main(["--burst", "--ops-port", str(holder.port), "--name", "second-worker"])
    finally:
        holder.stop()
    assert code == 0
    assert lines_at_load == [1]  # the port was tried, and said so, before the model load began
    assert len(taken_lines()) == 1 and "--ops-port" in taken_lines()[0]


# -- item 2: alive versus ready -------------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def probe_for(connection: redis.Redis, clock: Any, token_ok: Any = None) -> Any:
    from unittest.mock import Mock

    from worker.classifier import ModelService
    from worker.health import worker_probe

    models = Mock(ModelService)
    models.version = "v1"
    return worker_probe(connection, models, ["classify"], "w1", serves_model=True, clock=clock, token_ok=token_ok)


def test_a_worker_whose_loop_stopped_turning_is_not_alive(redis_conn: redis.Redis) -> None:
    from telemetry.endpoint import OpsServer
    from worker.health import IDLE_STALL_S, JOB_GRACE_S, LoopClock

    time_ = FakeTime()
    clock = LoopClock(now=time_)
    server = OpsServer("127.0.0.1", 0, probe_for(redis_conn, clock)).start()
    url = f"http://127.0.0.1:{server.port}"
    try:
        assert httpx.get(f"{url}/livez", timeout=5).status_code == 200  # loading: not started yet, alive
        clock.turn()
        time_.now += IDLE_STALL_S - 1
        assert httpx.get(f"{url}/livez", timeout=5).status_code == 200
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200

        time_.now += 2  # the loop has not turned for longer than IDLE_STALL_S: hung
        live = httpx.get(f"{url}/livez", timeout=5)
        assert live.status_code == 503 and live.json() == {"ok": False, "live": {"job_loop": False, "heartbeat": True}}
        assert httpx.get(f"{url}/readyz", timeout=5).status_code == 503
        health = httpx.get(f"{url}/healthz", timeout=5)
        assert health.status_code == 503 and health.json()["checks"]["redis"] is True

        clock.job_started(60)  # a job in hand is alive within its timeout (and grace), with heartbeats
        time_.now += 60 + JOB_GRACE_S - 1
        clock.beat()
        assert httpx.get(f"{url}/livez", timeout=5).status_code == 200
        time_.now += 2
        clock.beat()
        assert httpx.get(f"{url}/livez", timeout=5).json()["live"] == {"job_loop": False, "heartbeat": True}

        clock.job_started(-1)  # no timeout (RQ's -1): alive while the heartbeat thread tries
        assert httpx.get(f"{url}/livez", timeout=5).status_code == 200
        time_.now += 31  # the heartbeat thread stopped trying
        assert httpx.get(f"{url}/livez", timeout=5).json()["live"] == {"job_loop": True, "heartbeat": False}
    finally:
        server.stop()


def test_a_worker_without_redis_is_alive_but_not_ready() -> None:
    from telemetry.endpoint import OpsServer
    from worker.health import LoopClock

    down, _ = unreachable_redis()
    clock = LoopClock()
    clock.turn()
    server = OpsServer("127.0.0.1", 0, probe_for(down, clock, token_ok=lambda: True)).start()
    url = f"http://127.0.0.1:{server.port}"
    try:
        live = httpx.get(f"{url}/livez", timeout=5)
        assert live.status_code == 200 and live.json()["ok"] is True
        ready = httpx.get(f"{url}/readyz", timeout=5)
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"redis": False, "model_loaded": True, "slack_token": True}
        assert ready.json()["live"] == {"job_loop": True, "heartbeat": True}
        health = httpx.get(f"{url}/healthz", timeout=5)  # the combined answer compose asks
        assert health.status_code == 503
        assert (health.json()["checks"], health.json()["live"]) == (ready.json()["checks"], ready.json()["live"])
    finally:
        server.stop()


def test_the_job_loop_turns_the_clock_and_a_job_in_hand_arms_it(redis_conn: redis.Redis) -> None:
    """The real BatchingWorker loop (burst mode, in this thread): its heartbeats turn the clock, and a job in hand
    is seen as busy with its timeout (the job below reports what the worker's clock said while it ran)."""
    from rq import Queue

    from store.queues import SERIALIZER
    from worker.batching import BatchingWorker

    queue = Queue("health-test", connection=redis_conn, serializer=SERIALIZER)
    job = queue.enqueue("tests.test_health_probes.report_clock", job_timeout=45)
    worker = BatchingWorker([queue], connection=redis_conn, serializer=SERIALIZER)
    global WORKER
    WORKER = worker
    assert worker.clock.turned_at is None
    worker.work(burst=True, with_scheduler=False)
    job.refresh()
    seen = job.return_value()
    assert seen["busy"] is True and seen["deadline_in"] == pytest.approx(45 + 60, abs=5)
    assert worker.clock.turned_at is not None and not worker.clock.busy
    assert worker.clock.live() == {"job_loop": True, "heartbeat": True}


WORKER: Any = None


def report_clock() -> dict[str, Any]:
    clock = WORKER.clock
    return {"busy": clock.busy, "deadline_in": clock.job_deadline - clock._now()}


# -- issue 20 item 3: the public Slack port serves /metrics only when asked ----------------------------------


def test_the_slack_port_serves_metrics_only_when_asked(fake_slack: FakeSlack) -> None:
    down, _ = unreachable_redis()
    settings = Settings(_env_file=None, slack_bot_token="xoxb-test", slack_api_url=fake_slack.api_url)  # type: ignore[call-arg]
    app = build_app(settings, JobSubmitter(down))
    assert get(make_wsgi_app(app, down, "secret"), "/metrics")[0].startswith("404")
    environ: dict[str, Any] = {"PATH_INFO": "/metrics", "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    seen: list[str] = []
    body = b"".join(make_wsgi_app(app, down, "secret", metrics=True)(environ, lambda s, h: seen.append(s)))  # type: ignore[arg-type, func-returns-value]
    assert seen[0].startswith("200") and b"newsbot_requests_total" in body
    assert Settings(_env_file=None).ops_host == "127.0.0.1"  # type: ignore[call-arg]  # the ops port: this host only
