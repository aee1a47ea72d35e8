"""Retention: records without feedback expire, records with feedback stay, used response_urls are forgotten.

The real worker path (BatchingWorker in-process, fake Slack over HTTP) against a private redis-server.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
import redis
from rq import Retry
from rq.job import Job, JobStatus

from store import classifications
from store.classifications import ClassificationRecord
from store.feedback import FeedbackStore
from store.queues import SERIALIZER, classify_queue
from testkit.fake_slack import FakeSlack, Fault
from testkit.inprocess_worker import enqueue_classify, install_runtime, run_burst, worker_settings
from testkit.redis_server import RedisServer
from testkit.samples import SAMPLES
from worker.jobs import Runtime

DAY_S = 24 * 3600


@pytest.fixture
def rt(redis_server: RedisServer, redis_conn: redis.Redis, fake_slack: FakeSlack, model_registry: Path) -> Runtime:
    settings = worker_settings(redis_server.url, fake_slack.api_url, model_registry)
    return install_runtime(settings, redis_conn)


def test_a_record_expires_after_record_ttl_days_unless_feedback_arrives(
    rt: Runtime, redis_conn: redis.Redis, fake_slack: FakeSlack
) -> None:
    assert rt.settings.record_ttl_days == 90  # the default
    job = enqueue_classify(classify_queue(redis_conn), f"<@UBOT> {SAMPLES['smax'][0]}", 1)
    run_burst(redis_conn)
    key = ClassificationRecord.key_for(job.id)
    assert 89 * DAY_S < redis_conn.ttl(key) <= 90 * DAY_S

    store = FeedbackStore(redis_conn)
    store.remember_message(job.id, {"channel": "C42", "ts": "1.2", "text": "x", "blocks": []})
    snapshot = classifications.REPLY_SNAPSHOT.key_for(job.id)
    assert 89 * DAY_S < redis_conn.ttl(snapshot) <= 90 * DAY_S  # goes with its record

    store.record(job.id, "U1", "smax")
    assert redis_conn.ttl(key) == -1  # kept for good: retraining reads the article from it
    assert redis_conn.ttl(snapshot) == -1
    store.remember_message(job.id, {"channel": "C42", "ts": "1.2", "text": "y", "blocks": []})
    assert redis_conn.ttl(snapshot) == -1

    # A retried job storing the same record again does not give a record with feedback a TTL back.
    classifications.put_classification(redis_conn, store.classification(job.id), ttl_s=60)
    assert redis_conn.ttl(key) == -1
    assert store.classification(job.id).slug == store.of_user(job.id, "U1").predicted  # type: ignore[union-attr]


def test_no_ttl_when_record_ttl_days_is_zero_and_no_snapshot_of_a_record_that_is_gone(
    redis_conn: redis.Redis,
) -> None:
    record = ClassificationRecord(
        record_id="keep", title="見出し", body="本文", url="", slug="smax", model_version="v1", channel="C1"
    )
    classifications.put_classification(redis_conn, record, ttl_s=0)
    assert redis_conn.ttl(ClassificationRecord.key_for("keep")) == -1
    classifications.put_reply_snapshot(redis_conn, "gone", {"text": "x"})
    assert not redis_conn.exists(classifications.REPLY_SNAPSHOT.key_for("gone"))


def stored_data(conn: redis.Redis, job_id: str) -> bytes:
    raw = conn.hget(Job.key_for(job_id), "data")
    assert isinstance(raw, bytes)
    return zlib.decompress(raw)


def test_the_response_url_is_dropped_from_the_stored_job_once_the_reply_is_posted(
    rt: Runtime, redis_conn: redis.Redis, fake_slack: FakeSlack
) -> None:
    url = fake_slack.response_url("once")
    job = enqueue_classify(
        classify_queue(redis_conn), SAMPLES["peachy"][0], 2, response_url=url, thread_ts=None, source="command"
    )
    assert url.encode() in stored_data(redis_conn, job.id)
    run_burst(redis_conn)
    assert [c.params["_name"] for c in fake_slack.calls_to("response_url") if c.delivered] == ["once"]
    assert not fake_slack.calls_to("chat.postMessage")
    assert url.encode() not in stored_data(redis_conn, job.id)
    done = Job.fetch(job.id, connection=redis_conn, serializer=SERIALIZER)
    assert done.get_status() == JobStatus.FINISHED
    assert "response_url" not in done.args[0] and done.args[0]["text"] == SAMPLES["peachy"][0]
    assert url not in str(done.return_value())


def test_a_retry_before_the_reply_still_answers_through_the_response_url(
    rt: Runtime, redis_conn: redis.Redis, fake_slack: FakeSlack
) -> None:
    # The first attempt cannot reach the response_url (slack_sdk's two retries fail too): RQ retries the job.
    fake_slack.fail("response_url", Fault(500), Fault(500), Fault(500))
    url = fake_slack.response_url("retried")
    job = enqueue_classify(
        classify_queue(redis_conn),
        SAMPLES["peachy"][1],
        3,
        response_url=url,
        thread_ts=None,
        source="command",
        retry=Retry(max=1),
    )
    run_burst(redis_conn)
    calls = [c for c in fake_slack.calls_to("response_url") if c.params["_name"] == "retried"]
    assert [c.status for c in calls] == [500, 500, 500, 200]
    assert not fake_slack.calls_to("chat.postMessage")  # never posted anywhere else
    done = Job.fetch(job.id, connection=redis_conn, serializer=SERIALIZER)
    assert done.get_status() == JobStatus.FINISHED and done.retries_left == 0
    assert url.encode() not in stored_data(redis_conn, job.id)
