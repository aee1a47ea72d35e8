"""Hot reload in a real `python -m worker` process: `current` changes while jobs keep coming; none fails."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import redis
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry

from newsmodel.registry import set_current
from store.queues import classify_queue
from store.serving import ServingState, serving_states
from testkit.fake_slack import FakeSlack
from testkit.inprocess_worker import enqueue_classify
from testkit.processes import product_env, start_worker
from testkit.redis_server import RedisServer
from testkit.samples import all_texts
from testkit.tiny_bert import build_tiny_bert
from testkit.waiting import wait_until

V1 = "20260101-000000-tiny0001"
V2 = "20260102-000000-tiny0002"
BROKEN = "20260101-120000-broken"


def serving(conn: redis.Redis) -> ServingState:
    states = serving_states(conn)
    assert len(states) == 1, states
    return states[0]


def serving_version(conn: redis.Redis) -> str | None:
    """The one worker's served version, or None while it has published nothing (yet)."""
    states = serving_states(conn)
    return states[0].version if len(states) == 1 else None


def test_current_changes_while_jobs_keep_being_answered(
    tmp_path: Path, redis_server: RedisServer, redis_conn: redis.Redis, fake_slack: FakeSlack, model_registry: Path
) -> None:
    build_tiny_bert(model_registry / V2, all_texts(), seed=1)
    broken = model_registry / BROKEN
    shutil.copytree(model_registry / V1, broken)
    (broken / "config.json").write_text('{"model_type": "bert", "id2label": ', encoding="utf-8")  # half-written
    env = product_env(
        REDIS_URL=redis_server.url,
        SLACK_API_URL=fake_slack.api_url,
        MODEL_DIR=str(model_registry),
        MODEL_POLL_INTERVAL_S="0.3",
    )
    worker = start_worker(env, tmp_path / "run")
    queue = classify_queue(redis_conn)
    jobs: list[Job] = []
    texts = all_texts()

    def send(count: int) -> None:
        for _ in range(count):
            n = len(jobs)
            jobs.append(enqueue_classify(queue, f"ニュース\n{texts[n % len(texts)]}", n))
            time.sleep(0.05)  # spread over time, as users send them: the reload happens between jobs

    try:
        wait_until(lambda: serving_version(redis_conn) == V1, "V1 served", 60)
        send(10)
        # A broken version becomes current: it is not swapped in; v1 keeps answering; the reason is published.
        set_current(model_registry, BROKEN)
        wait_until(lambda: serving(redis_conn).last_error != "", "the load error published", 60)
        assert serving(redis_conn).version == V1
        assert BROKEN in serving(redis_conn).last_error
        send(10)
        # Then a good new version: swapped in between batches while jobs keep arriving.
        set_current(model_registry, V2)
        send(20)
        wait_until(lambda: serving_version(redis_conn) == V2, "V2 served", 60)
        assert serving(redis_conn).device == "cpu"
        assert serving(redis_conn).last_error == ""
        send(5)
        wait_until(lambda: len(fake_slack.calls_to("chat.postMessage")) >= len(jobs), "every reply", 60)
    finally:
        worker.stop()

    assert len(FailedJobRegistry(queue=queue)) == 0
    versions = []
    for job in jobs:
        job = Job.fetch(job.id, connection=redis_conn, serializer=queue.serializer)
        assert job.get_status() == JobStatus.FINISHED, worker.log()
        versions.append((job.return_value() or {})["model_version"])
    assert set(versions) == {V1, V2}
    switched = versions.index(V2)
    assert versions[switched:] == [V2] * (len(versions) - switched)  # no going back once swapped
    assert versions[-5:] == [V2] * 5
    posts = fake_slack.calls_to("chat.postMessage")
    assert len(posts) == len(jobs)  # one reply each, no duplicates
    assert all(f"model {v}" in p.params["text"] for p, v in zip(sorted(posts, key=ts), versions, strict=True))
    assert "not swapped in" in worker.log()


def ts(call: object) -> str:
    return str(getattr(call, "params", {}).get("thread_ts", ""))
