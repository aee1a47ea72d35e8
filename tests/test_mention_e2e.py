"""Walking skeleton end to end: a signed app_mention → bot (HTTP) → Redis/RQ → worker → chat.postMessage."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from common.labels import SLUGS
from testkit.fake_slack import FakeSlack
from testkit.processes import Proc, product_env, start_bot, start_worker
from testkit.redis_server import RedisServer, free_port
from testkit.signing import event_body, slack_signature_headers

SECRET = "test-signing-secret"


@pytest.fixture
def stack(
    tmp_path: Path, redis_server: RedisServer, redis_conn: redis.Redis, fake_slack: FakeSlack, model_registry: Path
) -> Iterator[dict[str, object]]:
    env = product_env(
        REDIS_URL=redis_server.url,
        SLACK_API_URL=fake_slack.api_url,
        MODEL_DIR=str(model_registry),
        SLACK_SIGNING_SECRET=SECRET,
    )
    port = free_port()
    procs: list[Proc] = []
    try:
        procs.append(start_worker(env, tmp_path / "run"))
        procs.append(start_bot(env, port, tmp_path / "run"))
        yield {"url": f"http://127.0.0.1:{port}/slack/events", "procs": procs}
    finally:
        for proc in procs:
            proc.stop()


def mention(
    ts: str = "1700000000.000100", text: str = "<@UBOT> 日本代表は試合終了間際のゴールで勝利した。"
) -> dict[str, str]:
    return {"type": "app_mention", "user": "U123", "text": text, "ts": ts, "channel": "C42", "event_ts": ts}


def post_signed(url: str, body: bytes, **extra_headers: str) -> httpx.Response:
    headers = {"Content-Type": "application/json", **slack_signature_headers(body, SECRET), **extra_headers}
    return httpx.post(url, content=body, headers=headers, timeout=10)


def test_mention_is_answered_once_in_its_thread(
    stack: dict[str, object], fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    url = str(stack["url"])
    body = event_body(mention(), event_id="Ev0001")

    first = post_signed(url, body)
    assert first.status_code == 200

    posts = fake_slack.wait_for_calls("chat.postMessage", 1, timeout=60)
    assert len(posts) == 1
    post = posts[0]
    assert post.params["channel"] == "C42"
    assert post.params["thread_ts"] == "1700000000.000100"
    named = [slug for slug in SLUGS if f"`{slug}`" in post.params["text"]]
    assert len(named) == 1, post.params["text"]
    assert "%" in post.params["text"]  # the confidence

    # Slack retries the same event (same event_id) with X-Slack-Retry-Num: it must enqueue nothing new.
    retry = post_signed(url, body, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    assert retry.status_code == 200
    # A fresh event afterwards is answered: so when it has been, the retry had its chance to be too.
    post_signed(url, event_body(mention(ts="1700000000.000200"), event_id="Ev0002"))
    fake_slack.wait_for_calls("chat.postMessage", 2, timeout=60)
    threads = [c.params["thread_ts"] for c in fake_slack.calls_to("chat.postMessage")]
    assert sorted(threads) == ["1700000000.000100", "1700000000.000200"]


def test_unsigned_or_badly_signed_requests_get_401_and_enqueue_nothing(
    stack: dict[str, object], redis_conn: redis.Redis
) -> None:
    url = str(stack["url"])
    body = event_body(mention(), event_id="Ev0003")
    unsigned = httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=10)
    assert unsigned.status_code == 401
    forged = {"Content-Type": "application/json", **slack_signature_headers(body, "wrong-secret")}
    assert httpx.post(url, content=body, headers=forged, timeout=10).status_code == 401
    stale = {"Content-Type": "application/json", **slack_signature_headers(body, SECRET, timestamp=1_000_000_000)}
    assert httpx.post(url, content=body, headers=stale, timeout=10).status_code == 401
    assert redis_conn.llen("rq:queue:classify") == 0
    assert not [k for k in redis_conn.keys("rq:job:*")]


def test_healthz_reports_redis(stack: dict[str, object]) -> None:
    health = httpx.get(str(stack["url"]).replace("/slack/events", "/healthz"), timeout=5)
    assert health.status_code == 200
    assert json.loads(health.content)["redis"] == "ok"
