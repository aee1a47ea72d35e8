"""Feedback clicked in Slack survives a Redis restart (append-only persistence, as the compose file runs it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from store import classifications
from store.classifications import ClassificationRecord
from store.feedback import FeedbackStore
from testkit.fake_slack import FakeSlack
from testkit.processes import product_env, start_bot
from testkit.redis_server import RedisServer, free_port
from testkit.slack_requests import SECRET, block_action
from ui.ids import FEEDBACK_CHOOSE_ACTION, FEEDBACK_WRONG_ACTION


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    yield server
    server.stop()


def test_feedback_clicks_survive_a_redis_restart(tmp_path: Path, aof_redis: RedisServer, fake_slack: FakeSlack) -> None:
    conn = redis.Redis.from_url(aof_redis.url)
    record = ClassificationRecord(
        record_id="rec1",
        title="",
        body="横綱が千秋楽で優勝を決めた。",
        url="",
        slug="topic-news",
        model_version="v1",
        channel="C1",
    )
    classifications.put_classification(conn, record)
    env = product_env(REDIS_URL=aof_redis.url, SLACK_API_URL=fake_slack.api_url, SLACK_SIGNING_SECRET=SECRET)
    port = free_port()
    bot = start_bot(env, port, tmp_path / "run")
    url = f"http://127.0.0.1:{port}/slack/events"
    message = {"type": "message", "ts": "1.000100", "text": "result", "blocks": []}

    def choose(user: str, slug: str, name: str) -> None:
        wrong = {"action_id": FEEDBACK_WRONG_ACTION, "block_id": "fb", "value": "rec1", "type": "button"}
        block_action(url, wrong, user=user, message=message, response_url=fake_slack.response_url(name))
        fake_slack.wait_for(
            lambda f: any(c.params.get("user") == user for c in f.calls_to("chat.postEphemeral")), timeout=20
        )
        select = {
            "action_id": FEEDBACK_CHOOSE_ACTION,
            "block_id": "feedback_choose:rec1",
            "type": "static_select",
            "selected_option": {"value": slug, "text": {"type": "plain_text", "text": slug}},
        }
        block_action(url, select, user=user, message=None, ephemeral=True, response_url=fake_slack.response_url(name))
        fake_slack.wait_for(
            lambda f: any(c.params.get("_name") == name for c in f.calls_to("response_url")), timeout=20
        )

    try:
        choose("U1", "sports-watch", "u1")
        aof_redis.restart()  # SIGTERM and start again on the same port and data folder
        conn = redis.Redis.from_url(aof_redis.url)
        stored = FeedbackStore(conn).of_user("rec1", "U1")
        assert stored is not None and (stored.predicted, stored.chosen) == ("topic-news", "sports-watch")

        # The bot reconnects by itself; a click after the restart is stored beside the one before it.
        choose("U2", "sports-watch", "u2")
        counts = FeedbackStore(conn).counts("rec1")
        assert counts.corrections == {"sports-watch": 2}
        last_update = fake_slack.calls_to("chat.update")[-1].params["blocks"]
        assert "Wrong: 2" in (last_update if isinstance(last_update, str) else json.dumps(last_update))
    finally:
        bot.stop()
