"""Socket Mode end to end: ``python -m bot`` with SLACK_APP_TOKEN connects to (fake) Slack over a WebSocket,
acks envelopes, and a mention delivered that way is answered once in its thread by the worker."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq import Queue

from store.queues import SERIALIZER
from testkit.fake_slack import FakeSlack
from testkit.fake_socket_mode import FakeSocketMode
from testkit.processes import launch_worker, socket_mode_env, start_socket_mode_bot, stopped_on_failure, wait_started
from testkit.redis_server import RedisServer
from testkit.signing import event_body
from testkit.waiting import wait_until


def test_a_mention_over_socket_mode_is_acked_and_answered_once(
    tmp_path: Path,
    redis_server: RedisServer,
    redis_conn: redis.Redis,
    fake_slack: FakeSlack,
    socket_mode: FakeSocketMode,
    model_registry: Path,
) -> None:
    env = socket_mode_env(REDIS_URL=redis_server.url, SLACK_API_URL=fake_slack.api_url, MODEL_DIR=str(model_registry))
    starting = launch_worker(env, tmp_path / "run")  # its start-up overlaps the bot's
    worker = starting.proc
    with stopped_on_failure(worker):
        bot = start_socket_mode_bot(env, tmp_path / "run", socket_mode.connected)
    with stopped_on_failure(bot):
        wait_started(starting)
    try:
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
        assert bot.wait_exit(20) == 0, bot.log()
    finally:
        bot.stop()
        worker.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis that this test may stop and start again (on the same port)."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def queued_classify_ids(conn: redis.Redis) -> list[str]:
    return [job.args[0]["request_id"] for job in Queue("classify", connection=conn, serializer=SERIALIZER).jobs]


def test_while_redis_is_down_nothing_is_acked_and_lost(
    tmp_path: Path, own_redis: RedisServer, fake_slack: FakeSlack, socket_mode: FakeSocketMode
) -> None:
    """A mention whose enqueue fails is left unacked (Slack redelivers it); a slash command's or a shortcut's
    user is told that the queue is unavailable (Slack never redelivers those); an unhandled event is acked."""
    env = socket_mode_env(REDIS_URL=own_redis.url, SLACK_API_URL=fake_slack.api_url)
    bot = start_socket_mode_bot(env, tmp_path / "run", socket_mode.connected)
    conn = redis.Redis.from_url(own_redis.url)
    try:
        # An event type nobody listens to is acked (and ignored), or Slack would redeliver it forever.
        reaction = {"type": "reaction_added", "user": "U7", "reaction": "eyes", "event_ts": "1.1"}
        socket_mode.send("events_api", "env-reaction", json.loads(event_body(reaction, "EvReact")))
        socket_mode.wait_ack("env-reaction", timeout=30)

        own_redis.stop()
        mention = {
            "type": "app_mention",
            "user": "U7",
            "text": "<@UBOT> 横綱が千秋楽で優勝を決めた。",
            "ts": "1700000200.000100",
            "channel": "CSOCK",
            "event_ts": "1700000200.000100",
        }
        down_event = json.loads(event_body(mention, "EvDown1"))
        socket_mode.send("events_api", "env-down", down_event)
        command = {
            "command": "/classify-news",
            "text": "日本代表は試合終了間際のゴールで勝利した。",
            "user_id": "U7",
            "channel_id": "CSOCK",
            "team_id": "T0001",
            "api_app_id": "A0001",
            "trigger_id": "trig-down-1",
            "response_url": fake_slack.response_url("down"),
        }
        socket_mode.send("slash_commands", "env-cmd", command)
        shortcut = {
            "type": "message_action",
            "callback_id": "classify_message",
            "trigger_id": "trig-down-2",
            "team": {"id": "T0001"},
            "user": {"id": "U8", "team_id": "T0001"},
            "channel": {"id": "CSOCK"},
            "message": {"type": "message", "ts": "1700000200.000300", "text": "新型スマートフォンの記事です。"},
            "response_url": fake_slack.response_url("unused"),
            "api_app_id": "A0001",
        }
        socket_mode.send("interactive", "env-shortcut", shortcut)

        # The command's and the shortcut's users are told, in Japanese and English.
        fake_slack.wait_for(
            lambda f: any(
                c.params.get("_name") == "down" and "ただいま受け付けできません" in c.params.get("text", "")
                for c in f.calls_to("response_url")
            ),
            timeout=60,
        )
        notes = fake_slack.wait_for_calls("chat.postEphemeral", 1, timeout=60)
        assert notes[0].params["user"] == "U8" and "ただいま受け付けできません" in notes[0].params["text"]
        assert "cannot take requests" in notes[0].params["text"]
        socket_mode.wait_ack("env-cmd")
        socket_mode.wait_ack("env-shortcut")
        # The mention's listener failed (the bot logs why); its envelope is not acked, so Slack redelivers it.
        wait_until(lambda: "could not handle EvDown1" in bot.log(), "the failed mention in the bot's log", 60)
        assert "env-down" not in socket_mode.acks  # and never later either: checked again at the end

        own_redis.start()
        assert queued_classify_ids(conn) == []
        # Slack's redelivery of the mention (a new envelope, same event_id) is now acked and enqueued, once.
        socket_mode.send("events_api", "env-down-retry", down_event, retry_attempt=1)
        socket_mode.wait_ack("env-down-retry", timeout=30)
        next_event = json.loads(event_body({**mention, "ts": "1700000200.000200"}, "EvUp2"))
        socket_mode.send("events_api", "env-up", next_event)
        socket_mode.wait_ack("env-up", timeout=30)
        assert sorted(queued_classify_ids(conn)) == ["EvDown1", "EvUp2"]
        assert "env-down" not in socket_mode.acks
    finally:
        conn.close()
        bot.stop()
