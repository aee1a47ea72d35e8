"""Redis restarted under a running bot and worker: both reconnect by themselves, nothing is lost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from testkit.fake_slack import FakeSlack
from testkit.processes import Proc, launch_bot, launch_worker, product_env, start_bot, start_worker, wait_started
from testkit.redis_server import RedisServer, free_port
from testkit.signing import event_body, slack_signature_headers

SECRET = "test-signing-secret"


def mention(ts: str, text: str = "<@UBOT> プロ野球の開幕戦でエースが完投した。") -> dict[str, str]:
    return {"type": "app_mention", "user": "U1", "text": text, "ts": ts, "channel": "C9", "event_ts": ts}


def post(url: str, event_id: str, ts: str, **headers: str) -> httpx.Response:
    body = event_body(mention(ts), event_id)
    all_headers = {"Content-Type": "application/json", **slack_signature_headers(body, SECRET), **headers}
    return httpx.post(url, content=body, headers=all_headers, timeout=20)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis with append-only persistence, as in docker-compose.yml, that this test may restart."""
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    yield server
    server.stop()


def stack_env(redis_server: RedisServer, fake: FakeSlack, model_registry: Path) -> tuple[dict[str, str], int, str]:
    """The product's environment against this test's Redis, a free bot port, and the bot's events URL."""
    env = product_env(
        REDIS_URL=redis_server.url,
        SLACK_API_URL=fake.api_url,
        MODEL_DIR=str(model_registry),
        SLACK_SIGNING_SECRET=SECRET,
    )
    port = free_port()
    return env, port, f"http://127.0.0.1:{port}/slack/events"


def test_bot_and_worker_survive_a_redis_restart(
    tmp_path: Path, own_redis: RedisServer, fake_slack: FakeSlack, model_registry: Path
) -> None:
    env, port, url = stack_env(own_redis, fake_slack, model_registry)
    procs: list[Proc] = []
    try:
        procs.extend(wait_started(launch_worker(env, tmp_path / "run"), launch_bot(env, port, tmp_path / "run")))
        assert post(url, "EvR1", "10.1").status_code == 200
        fake_slack.wait_for_calls("chat.postMessage", 1, timeout=60)

        own_redis.stop()
        # While Redis is down the bot cannot enqueue: it answers 500 so that Slack retries the delivery.
        assert post(url, "EvR2", "10.2").status_code >= 500
        own_redis.start()

        # Slack's retry of the same event now goes through, and a new event too; nobody was restarted.
        assert post(url, "EvR2", "10.2", **{"X-Slack-Retry-Num": "1"}).status_code == 200
        assert post(url, "EvR3", "10.3").status_code == 200
        fake_slack.wait_for_calls("chat.postMessage", 3, timeout=90)
        threads = sorted(c.params["thread_ts"] for c in fake_slack.calls_to("chat.postMessage"))
        assert threads == ["10.1", "10.2", "10.3"]
        assert all(p.alive() for p in procs), [p.log()[-2000:] for p in procs]
    finally:
        for proc in procs:
            proc.stop()


def test_queued_jobs_survive_a_redis_restart_with_persistence(
    tmp_path: Path, own_redis: RedisServer, fake_slack: FakeSlack, model_registry: Path
) -> None:
    env, port, url = stack_env(own_redis, fake_slack, model_registry)
    bot = start_bot(env, port, tmp_path / "run")
    try:
        # No worker yet: the job waits in the queue while Redis restarts.
        assert post(url, "EvQ1", "20.1").status_code == 200
        own_redis.restart()
        worker = start_worker(env, tmp_path / "run")
        try:
            posts = fake_slack.wait_for_calls("chat.postMessage", 1, timeout=60)
            assert [p.params["thread_ts"] for p in posts] == ["20.1"]
        finally:
            worker.stop()
    finally:
        bot.stop()
