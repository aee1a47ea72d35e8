"""Bad article input: each case gets a clear reply in its thread, nothing crashes, no job is lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
from rq.job import Job, JobStatus

from common.labels import SLUGS
from store import classifications
from store.queues import classify_queue
from testkit.fake_slack import FakeSlack
from testkit.inprocess_worker import enqueue_classify, install_runtime, run_burst, worker_settings
from testkit.redis_server import RedisServer
from testkit.samples import SAMPLES
from worker.jobs import Runtime

NO_TEXT = "分類する本文がありません"


@pytest.fixture
def rt(redis_server: RedisServer, redis_conn: redis.Redis, fake_slack: FakeSlack, model_registry: Path) -> Runtime:
    return install_runtime(worker_settings(redis_server.url, fake_slack.api_url, model_registry), redis_conn)


def classify(redis_conn: redis.Redis, fake_slack: FakeSlack, text: str, n: int) -> tuple[Job, dict[str, Any]]:
    """Run one message through the real worker; return its finished job and the one reply in its thread."""
    queue = classify_queue(redis_conn)
    job = enqueue_classify(queue, text, n)
    run_burst(redis_conn)
    job = Job.fetch(job.id, connection=redis_conn, serializer=queue.serializer)
    assert job.get_status() == JobStatus.FINISHED, job.latest_result()
    posts = [c for c in fake_slack.calls_to("chat.postMessage") if c.params.get("thread_ts") == f"1700000000.{n:06d}"]
    assert len(posts) == 1, [c.params for c in posts]
    return job, posts[0].params


def named_slugs(text: str) -> list[str]:
    return [slug for slug in SLUGS if f"`{slug}`" in text]


@pytest.mark.parametrize(
    "text",
    [
        "<@UBOT>",
        "<@UBOT>    \n\t  \u3000 ",
        "<@UBOT> \x00\x01\x02\x1b\x7f\x9b",
        "<@UBOT> 😀🎉🔥👍",
        "<@UBOT> <#C123|general> <!here>",
    ],
    ids=["mention only", "whitespace", "control characters", "emoji only", "markup only"],
)
def test_no_article_text_is_said_not_guessed(
    rt: Runtime, redis_conn: redis.Redis, fake_slack: FakeSlack, text: str
) -> None:
    job, reply = classify(redis_conn, fake_slack, text, 1)
    assert NO_TEXT in reply["text"] and "no article text" in reply["text"]
    assert named_slugs(reply["text"]) == []
    assert job.return_value()["error"] == "EmptyArticleError"  # type: ignore[index]


def test_binary_noise_around_real_text_is_cleaned_and_classified(
    rt: Runtime, redis_conn: redis.Redis, fake_slack: FakeSlack
) -> None:
    text = "<@UBOT> \x00\ufffd" + SAMPLES["sports-watch"][0] + "\x07\x1b\u200b"
    job, reply = classify(redis_conn, fake_slack, text, 2)
    assert len(named_slugs(reply["text"])) == 1
    record = classifications.get_classification(redis_conn, job.id)
    assert "\x00" not in record.article.text and "\x07" not in record.article.text


@pytest.mark.parametrize(
    "text",
    [
        "The national team won the match with a goal in the final minute, and the coach praised the players.",
        "国家队在比赛最后一分钟进球获胜，主教练称赞了球员们的表现。",
    ],
    ids=["English", "Chinese"],
)
def test_other_languages_are_classified_with_the_unsure_notice(
    rt: Runtime, redis_conn: redis.Redis, fake_slack: FakeSlack, text: str
) -> None:
    job, reply = classify(redis_conn, fake_slack, f"<@UBOT> {text}", 3)
    # The tiny random test model is never sure (about 1/9 per class), so the reply must hedge.
    assert "Not sure" in reply["text"]
    assert len(named_slugs(reply["text"])) >= 1
    result = job.return_value()
    assert result is not None and sorted(result["scores"]) == sorted(SLUGS)


def test_a_megabyte_of_text_is_classified_within_the_job_timeout(
    rt: Runtime, redis_conn: redis.Redis, fake_slack: FakeSlack
) -> None:
    body = "".join(text for texts in SAMPLES.values() for text in texts)
    text = "<@UBOT> 長い記事\n" + (body * (1_000_000 // len(body) + 1))[:1_000_000]
    job, reply = classify(redis_conn, fake_slack, text, 4)
    assert len(named_slugs(reply["text"])) == 1
    assert job.ended_at is not None and job.started_at is not None
    assert (job.ended_at - job.started_at).total_seconds() < rt.settings.classify_job_timeout_s
    record = classifications.get_classification(redis_conn, job.id)
    assert record.title == "長い記事" and 0 < len(record.body) <= classifications.RECORD_BODY_MAX_CHARS  # capped


def test_thirty_links_are_bounded_and_the_reply_says_so(
    rt: Runtime, redis_conn: redis.Redis, fake_slack: FakeSlack
) -> None:
    links = " ".join(f"<http://127.0.0.1:9/article/{i}>" for i in range(30))  # port 9: nothing listens
    job, reply = classify(redis_conn, fake_slack, f"<@UBOT> {links}", 5)
    limit = rt.settings.max_links_per_message
    result = job.return_value()
    assert result is not None
    assert len(result["articles"]) == limit
    assert result["dropped_urls"] == 30 - limit
    assert str(30 - limit) in reply["text"] or str(limit) in reply["text"]
