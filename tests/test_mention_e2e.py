"""Walking skeleton end to end: a signed app_mention → bot (HTTP) → Redis/RQ → worker → chat.postMessage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from common.labels import SLUGS
from testkit.fake_slack import FakeSlack
from testkit.processes import launch_bot, launch_worker, product_env, seed_registry, wait_started
from testkit.redis_server import RedisServer, free_port
from testkit.signing import event_body, slack_signature_headers
from testkit.waiting import wait_until

SECRET = "test-signing-secret"


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, fake_slack_server: FakeSlack, tiny_model: Path
) -> Iterator[dict[str, object]]:
    """One bot and worker for the module's tests (each has its own flushed Redis and reset fake Slack; the metrics
    test reads differences, so what an earlier test counted does not matter)."""
    root = tmp_path_factory.mktemp("mention")
    models = root / "models"
    seed_registry(models, tiny_model, "20260101-000000-tiny0001")
    env = product_env(
        REDIS_URL=redis_server.url,
        SLACK_API_URL=fake_slack_server.api_url,
        MODEL_DIR=str(models),
        SLACK_SIGNING_SECRET=SECRET,
        METRICS_ON_SLACK_PORT="true",  # the bot's metrics on its Slack port, as an operator may ask
    )
    port, worker_ops = free_port(), free_port()
    redis_server.flush()
    procs = wait_started(
        launch_worker(env, root / "run", "--ops-port", str(worker_ops)), launch_bot(env, port, root / "run")
    )
    try:
        yield {
            "url": f"http://127.0.0.1:{port}/slack/events",
            "procs": procs,
            "bot_metrics": f"http://127.0.0.1:{port}/metrics",
            "worker_metrics": f"http://127.0.0.1:{worker_ops}/metrics",
        }
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


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a /metrics answer: (name, labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url, timeout=5).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_a_mention_moves_the_bot_and_worker_metrics(
    stack: dict[str, object], fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    bot_url, worker_url = str(stack["bot_metrics"]), str(stack["worker_metrics"])
    bot_before, worker_before = scrape(bot_url), scrape(worker_url)

    body = event_body(mention(ts="1700000000.000300"), event_id="Ev0300")
    assert post_signed(str(stack["url"]), body).status_code == 200
    fake_slack.wait_for_calls("chat.postMessage", 1, timeout=60)
    # The reply is posted before the job's figures are recorded: wait for them.
    wait_until(
        lambda: value(scrape(worker_url), "newsbot_job_latency_seconds_count", source="mention") >= 1,
        "the job latency to be observed",
        10,
    )
    bot_after, worker_after = scrape(bot_url), scrape(worker_url)

    enqueued = {"kind": "mention", "outcome": "enqueued"}
    assert (
        value(bot_after, "newsbot_requests_total", **enqueued)
        == value(bot_before, "newsbot_requests_total", **enqueued) + 1
    )
    for name, labels in (
        ("newsbot_job_latency_seconds_count", {"source": "mention"}),
        ("newsbot_prediction_confidence_count", {}),
        ("newsbot_batch_size_count", {}),
        ("newsbot_inference_seconds_count", {"model_type": "bert"}),
    ):
        assert value(worker_after, name, **labels) == value(worker_before, name, **labels) + 1, name
    latency = value(worker_after, "newsbot_job_latency_seconds_sum", source="mention")
    assert 0 < latency < 60
    ok_posts = {"method": "chat.postMessage", "outcome": "ok"}
    assert value(worker_after, "newsbot_slack_api_calls_total", **ok_posts) >= 1
    served = {"version": "20260101-000000-tiny0001", "model_type": "bert"}
    assert value(worker_after, "newsbot_model_info", **served) == 1.0

    # A mention without an article is a usage answer, counted as such and not enqueued.
    usage_body = event_body(mention(ts="1700000000.000400", text="<@UBOT>"), "Ev0400")
    assert post_signed(str(stack["url"]), usage_body).status_code == 200
    usage = {"kind": "mention", "outcome": "usage"}
    later = scrape(bot_url)
    assert value(later, "newsbot_requests_total", **usage) == value(bot_after, "newsbot_requests_total", **usage) + 1
    assert value(later, "newsbot_requests_total", **enqueued) == value(bot_after, "newsbot_requests_total", **enqueued)
