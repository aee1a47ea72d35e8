"""Socket Mode end to end: ``python -m bot`` with SLACK_APP_TOKEN connects to (fake) Slack over a WebSocket,
acks envelopes, and a mention delivered that way is answered once in its thread by the worker."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from testkit.fake_slack import FakeSlack
from testkit.fake_socket_mode import FakeSocketMode
from testkit.processes import Proc, product_env, start_worker
from testkit.redis_server import RedisServer
from testkit.signing import event_body


@pytest.fixture
def socket_mode(fake_slack: FakeSlack) -> Iterator[FakeSocketMode]:
    server = FakeSocketMode().start()
    fake_slack.socket_mode_url = server.url
    yield server
    fake_slack.socket_mode_url = None
    server.stop()


def test_a_mention_over_socket_mode_is_acked_and_answered_once(
    tmp_path: Path,
    redis_server: RedisServer,
    redis_conn: redis.Redis,
    fake_slack: FakeSlack,
    socket_mode: FakeSocketMode,
    model_registry: Path,
) -> None:
    env = product_env(
        REDIS_URL=redis_server.url,
        SLACK_API_URL=fake_slack.api_url,
        MODEL_DIR=str(model_registry),
        SLACK_APP_TOKEN="xapp-1-A0001-test",
    )
    env.pop("SLACK_SIGNING_SECRET")
    worker = start_worker(env, tmp_path / "run")
    bot = Proc("bot", ["-m", "bot"], env, tmp_path / "run")
    try:
        assert socket_mode.connected.wait(60), bot.log()
        assert fake_slack.calls_to("apps.connections.open")[0].headers["authorization"] == "Bearer xapp-1-A0001-test"
        ts = "1700000100.000100"
        event = {
            "type": "app_mention",
            "user": "U7",
            "text": "<@UBOT> 横綱が千秋楽で優勝を決めた。",
            "ts": ts,
            "channel": "CSOCK",
            "event_ts": ts,
        }
        payload = json.loads(event_body(event, "EvSock1"))
        socket_mode.send("events_api", "env-1", payload)
        socket_mode.wait_ack("env-1")
        posts = fake_slack.wait_for_calls("chat.postMessage", 1, timeout=60)
        assert posts[0].params["channel"] == "CSOCK" and posts[0].params["thread_ts"] == ts

        # Slack redelivers the same event (same event_id) on a new envelope: acked, nothing new enqueued.
        socket_mode.send("events_api", "env-2", payload, retry_attempt=1)
        socket_mode.wait_ack("env-2")
        payload2 = json.loads(event_body({**event, "ts": "1700000100.000200"}, "EvSock2"))
        socket_mode.send("events_api", "env-3", payload2)
        fake_slack.wait_for_calls("chat.postMessage", 2, timeout=60)
        threads = sorted(c.params["thread_ts"] for c in fake_slack.calls_to("chat.postMessage"))
        assert threads == [ts, "1700000100.000200"]

        bot.signal(signal.SIGTERM)
        assert bot.popen.wait(20) == 0, bot.log()
    finally:
        bot.stop()
        worker.stop()
