"""A watched channel over Socket Mode: the message event is acked, reacted to and cross-posted once, and Slack's
redelivery of it (a new envelope, the same event) and an edit of it change nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path

import redis

from common.labels import SLUGS
from store import newsroom
from store.newsroom import Route, Watch
from testkit.fake_slack import FakeSlack
from testkit.fake_socket_mode import FakeSocketMode
from testkit.processes import (
    classify_settled,
    launch_worker,
    socket_mode_env,
    start_socket_mode_bot,
    stopped_on_failure,
    wait_started,
)
from testkit.redis_server import RedisServer
from testkit.samples import SAMPLES
from testkit.signing import event_body
from testkit.waiting import wait_until

NEWS, DESK = "CSOCKNEWS", "CSOCKDESK"


def test_a_watched_article_over_socket_mode_gets_one_reaction_and_one_desk_post(
    tmp_path: Path,
    redis_server: RedisServer,
    redis_conn: redis.Redis,
    fake_slack: FakeSlack,
    socket_mode: FakeSocketMode,
    model_registry: Path,
) -> None:
    env = socket_mode_env(
        REDIS_URL=redis_server.url,
        SLACK_API_URL=fake_slack.api_url,
        MODEL_DIR=str(model_registry),
        CONFIDENCE_THRESHOLD="0",
        SLACK_PACE_S="0.05",
    )
    newsroom.put_watch(redis_conn, Watch(channel=NEWS, by="UADMIN", at=time.time()))
    fake_slack.add_channel(NEWS)  # both public: the desk reaches no one the watched channel does not
    fake_slack.add_channel(DESK)
    for slug in SLUGS:
        newsroom.put_route(redis_conn, Route(label=slug, channel=DESK, by="UADMIN", at=time.time()))
    starting = launch_worker(env, tmp_path / "run")  # its start-up overlaps the bot's
    worker = starting.proc
    with stopped_on_failure(worker):
        bot = start_socket_mode_bot(env, tmp_path / "run", socket_mode.connected)
    with stopped_on_failure(bot):
        wait_started(starting)
    try:
        ts = "1700000700.000100"
        event = {
            "type": "message",
            "channel": NEWS,
            "channel_type": "channel",
            "user": "U7",
            "text": "".join(SAMPLES["movie-enter"]) * 3,
            "ts": ts,
            "event_ts": ts,
        }
        payload = json.loads(event_body(event, "EvSockWatch1"))
        socket_mode.send("events_api", "env-w1", payload)
        socket_mode.wait_ack("env-w1")
        fake_slack.wait_for(lambda f: bool(f.calls_to("chat.postMessage")), timeout=60)
        (post,) = fake_slack.calls_to("chat.postMessage")
        assert post.params["channel"] == DESK
        assert (NEWS, ts) in fake_slack.reactions

        socket_mode.send("events_api", "env-w2", payload, retry_attempt=1)
        edit = {**event, "subtype": "message_changed", "ts": "1700000700.000101", "message": {**event}}
        socket_mode.send("events_api", "env-w3", json.loads(event_body(edit, "EvSockWatch2")))
        # A fresh article afterwards is answered: by then the redelivery and the edit had their chance too.
        fresh = {**event, "ts": "1700000700.000200", "event_ts": "1700000700.000200"}
        socket_mode.send("events_api", "env-w4", json.loads(event_body(fresh, "EvSockWatch3")))
        for envelope in ("env-w2", "env-w3", "env-w4"):
            socket_mode.wait_ack(envelope)
        fake_slack.wait_for(lambda f: len(f.calls_to("chat.postMessage")) == 2, timeout=60)
        wait_until(lambda: classify_settled(redis_conn), "no classify job left waiting or in hand")
        assert sorted(fake_slack.reactions) == [(NEWS, ts), (NEWS, "1700000700.000200")]
        assert len(fake_slack.calls_to("reactions.add")) == 2
        assert [c.params["channel"] for c in fake_slack.calls_to("chat.postMessage")] == [DESK, DESK]
    finally:
        bot.stop()
        worker.stop()
