"""Batching: classify jobs waiting together share one forward pass; each finishes on its own in RQ and Slack."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Retry
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry

from common.articles import Article, article_from_text
from common.labels import SLUGS
from store import classifications
from store.queues import classify_queue
from testkit.fake_slack import FakeSlack, Fault
from testkit.inprocess_worker import enqueue_classify, install_runtime, run_burst, worker_settings
from testkit.redis_server import RedisServer
from testkit.samples import SAMPLES
from worker import jobs
from worker.classifier import ModelService, ServedBy
from worker.fetch import GuardedFetcher
from worker.jobs import Runtime
from worker.slack import SlackReplier, web_client

OTHER_JOB_RAN_KEY = "test:other-job-ran"


def other_job(marker: str) -> str:
    """Stands for the admin jobs that share the classify queue: must run normally, never batched."""
    from worker.jobs import runtime

    runtime().connection.rpush(OTHER_JOB_RAN_KEY, marker)
    return marker


@pytest.fixture
def rt(redis_server: RedisServer, redis_conn: redis.Redis, fake_slack: FakeSlack, model_registry: Path) -> Runtime:
    settings = worker_settings(redis_server.url, fake_slack.api_url, model_registry)
    return install_runtime(settings, redis_conn)


def texts() -> list[str]:
    return [f"ニュース{i}\n{SAMPLES[slug][i % 3]}" for i, slug in enumerate(SLUGS[:7])]


def test_waiting_jobs_share_one_forward_pass_and_each_gets_its_own_result(
    rt: Runtime, redis_conn: redis.Redis, fake_slack: FakeSlack
) -> None:
    queue = classify_queue(redis_conn)
    bodies = texts()
    enqueued = [enqueue_classify(queue, f"<@UBOT> {text}", n) for n, text in enumerate(bodies[:4])]
    other = queue.enqueue_call(f"{__name__}.other_job", args=("admin",), result_ttl=600)
    enqueued += [enqueue_classify(queue, f"<@UBOT> {text}", n) for n, text in enumerate(bodies[4:], start=4)]

    run_burst(redis_conn)

    # One forward pass for the seven jobs (the other job was left alone and ran normally).
    assert rt.models.batches == 1
    assert [m.decode() for m in redis_conn.lrange(OTHER_JOB_RAN_KEY, 0, -1)] == ["admin"]
    assert Job.fetch(other.id, connection=redis_conn).get_status() == JobStatus.FINISHED

    # Each job's result is what the model says for its own article alone.
    alone, _served = rt.models.predict([article_from_text(t) for t in bodies])
    posts = {c.params["thread_ts"]: c for c in fake_slack.calls_to("chat.postMessage")}
    assert len(posts) == len(enqueued)
    for job, text, expected in zip(enqueued, bodies, alone, strict=True):
        job = Job.fetch(job.id, connection=redis_conn, serializer=queue.serializer)
        assert job.get_status() == JobStatus.FINISHED
        result = job.return_value()
        assert result is not None
        assert result["slug"] == expected.slug
        assert result["confidence"] == pytest.approx(expected.confidence, abs=1e-4)
        assert set(result["scores"]) == set(SLUGS)
        assert result["batch"]["jobs"] == 7
        assert result["model_version"] == "20260101-000000-tiny0001"
        assert result["title"] == text.split("\n")[0]
        # Its own reply, in its own thread, naming its own slug; and its durable record.
        post = posts[job.args[0]["thread_ts"]]
        assert f"`{expected.slug}`" in post.params["text"]
        blocks = post.params["blocks"]
        elements = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
        buttons = [e for e in elements if not e["action_id"].startswith("feedback_pick")]  # (unsure: "which desk?")
        assert {b["action_id"] for b in buttons} == {"feedback_correct", "feedback_wrong"}
        assert {b["value"] for b in buttons} == {job.id}
        record = classifications.get_classification(redis_conn, job.id)
        assert record.slug == expected.slug
        assert record.ts == result["ts"] != ""
        assert record.channel == "C42"
        assert (record.title, record.body) == tuple(text.split("\n", 1))  # the article once, title apart
        ttl = redis_conn.ttl(classifications.ClassificationRecord.key_for(job.id))  # kept RECORD_TTL_DAYS for feedback
        assert 89 * 86400 < ttl <= rt.settings.record_ttl_days * 86400

    assert len(FinishedJobRegistry(queue=queue)) == len(enqueued) + 1
    assert len(StartedJobRegistry(queue=queue)) == 0
    assert len(FailedJobRegistry(queue=queue)) == 0
    assert redis_conn.llen(queue.intermediate_queue_key) == 0


def test_a_job_is_not_batched_with_itself_when_alone(rt: Runtime, redis_conn: redis.Redis) -> None:
    queue = classify_queue(redis_conn)
    enqueue_classify(queue, texts()[0], 1)
    run_burst(redis_conn)
    enqueue_classify(queue, texts()[1], 2)
    run_burst(redis_conn)
    assert rt.models.batches == 2


def test_transient_slack_failures_are_retried_and_only_the_last_attempt_tells_the_user(
    rt: Runtime, redis_conn: redis.Redis, fake_slack: FakeSlack
) -> None:
    queue = classify_queue(redis_conn)
    # Slack keeps answering HTTP 500: within each of the job's 3 attempts slack_sdk's ServerErrorRetryHandler
    # tries twice more (3 calls), so 9 failures use up the job's two retries.
    fake_slack.fail("chat.postMessage", *[Fault(500)] * 9)
    job = enqueue_classify(queue, texts()[0], 7, retry=Retry(max=2))
    run_burst(redis_conn)

    job = Job.fetch(job.id, connection=redis_conn, serializer=queue.serializer)
    assert job.get_status() == JobStatus.FAILED
    assert job.id in FailedJobRegistry(queue=queue)
    assert "chat.postMessage failed" in (job.latest_result().exc_string or "")  # type: ignore[union-attr]
    delivered = [c for c in fake_slack.calls_to("chat.postMessage") if c.delivered]
    assert [c.status for c in fake_slack.calls_to("chat.postMessage")] == [500] * 9 + [200]
    assert len(delivered) == 1  # one message, after the last attempt: the internal error with its reference
    assert "reference" in delivered[0].params["text"]
    assert job.id.rsplit("-", 1)[-1][:10] in delivered[0].params["text"]
    assert delivered[0].params["thread_ts"] == job.args[0]["thread_ts"]


def test_slack_rate_limit_is_waited_out_without_a_duplicate(
    rt: Runtime, redis_conn: redis.Redis, fake_slack: FakeSlack
) -> None:
    queue = classify_queue(redis_conn)
    fake_slack.fail("chat.postMessage", Fault(429, {"Retry-After": "1"}))
    job = enqueue_classify(queue, texts()[2], 8, retry=Retry(max=2))
    run_burst(redis_conn)
    job = Job.fetch(job.id, connection=redis_conn, serializer=queue.serializer)
    assert job.get_status() == JobStatus.FINISHED
    calls = fake_slack.calls_to("chat.postMessage")
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 0.9


POISON = "この記事はモデルを落とす"


class PoisonedModels(ModelService):
    """The served model, except that any forward pass including a poisoned article raises (as a bad input can)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.passes: list[int] = []  # the size of every forward pass asked for

    def predict(self, articles: Sequence[Article]) -> tuple[list[Any], ServedBy]:
        self.passes.append(len(articles))
        if any(POISON in article.text for article in articles):
            raise RuntimeError("CUDA error: device-side assert triggered")
        return super().predict(articles)


def test_a_job_that_breaks_the_shared_forward_pass_fails_alone_and_the_others_are_answered_once(
    redis_server: RedisServer, redis_conn: redis.Redis, fake_slack: FakeSlack, model_registry: Path
) -> None:
    settings = worker_settings(redis_server.url, fake_slack.api_url, model_registry)
    models = PoisonedModels.from_settings(settings)
    models.load()
    jobs.install(
        Runtime(
            settings, redis_conn, models, SlackReplier(web_client(settings)), GuardedFetcher.from_settings(settings)
        )
    )
    queue = classify_queue(redis_conn)
    bodies = [f"ニュース{i}\n{SAMPLES[SLUGS[i % len(SLUGS)]][i % 3]}" for i in range(8)]
    bodies[5] = f"見出し\n{POISON}。{bodies[5]}"
    enqueued = [enqueue_classify(queue, f"<@UBOT> {text}", n) for n, text in enumerate(bodies)]

    run_burst(redis_conn)

    # The failing job was isolated by halving: 1 + 2·log2(8) passes at most, not one pass per job.
    assert len(models.passes) <= 1 + 2 * math.ceil(math.log2(len(bodies)))
    assert models.passes[0] == len(bodies) and 1 in models.passes
    posts = fake_slack.calls_to("chat.postMessage")
    by_thread = Counter(c.params["thread_ts"] for c in posts)
    assert sorted(by_thread) == sorted(job.args[0]["thread_ts"] for job in enqueued)
    assert set(by_thread.values()) == {1}  # every job answered exactly once
    for n, job in enumerate(enqueued):
        job = Job.fetch(job.id, connection=redis_conn, serializer=queue.serializer)
        text = next(c.params["text"] for c in posts if c.params["thread_ts"] == job.args[0]["thread_ts"])
        if n == 5:
            assert job.get_status() == JobStatus.FAILED
            assert "reference" in text and "`" in text  # the internal error, with its reference
        else:
            assert job.get_status() == JobStatus.FINISHED
            result = job.return_value()
            assert result is not None and result["slug"] in SLUGS and f"`{result['slug']}`" in text
