"""The product's worker run in the test process: the real Runtime, BatchingWorker and fetcher, in burst mode.

Nothing is mocked: jobs go through the private redis-server, replies through the fake Slack Web API over
HTTP, links through the guarded fetcher over real sockets. Running in-process lets a test read the
ModelService's counters (forward passes) directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis
from rq import Queue, Retry
from rq.job import Job

from common.jobs import CLASSIFY_JOB, ClassifyRequest
from common.settings import Settings
from store.queues import SERIALIZER, classify_queue
from worker import jobs
from worker.batching import BatchingWorker
from worker.classifier import ModelService
from worker.fetch import GuardedFetcher
from worker.slack import SlackReplier, web_client


def worker_settings(redis_url: str, slack_api_url: str, model_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": "xoxb-test-token",
        "slack_api_url": slack_api_url,
        "redis_url": redis_url,
        "model_dir": model_dir,
        "fetch_allowed_networks": "127.0.0.0/8",
        "fetch_timeout_s": 3.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def install_runtime(settings: Settings, connection: redis.Redis) -> jobs.Runtime:
    models = ModelService.from_settings(settings)
    models.load()
    runtime = jobs.Runtime(
        settings=settings,
        connection=connection,
        models=models,
        replier=SlackReplier(web_client(settings)),
        fetcher=GuardedFetcher.from_settings(settings),
    )
    jobs.install(runtime)
    return runtime


def enqueue_classify(queue: Queue, text: str, n: int, *, retry: Retry | None = None, **request: Any) -> Job:
    fields: dict[str, Any] = {"request_id": f"Ev{n:04d}", "text": text, "channel": "C42", "user": "U1"}
    fields.setdefault("thread_ts", f"1700000000.{n:06d}")
    fields.update(request)
    payload = ClassifyRequest(**fields).to_dict()
    return queue.enqueue_call(
        CLASSIFY_JOB, args=(payload,), job_id=f"classify-test{n:04d}", result_ttl=600, failure_ttl=600, retry=retry
    )


def run_burst(connection: redis.Redis, batch_size: int = 32) -> BatchingWorker:
    worker = BatchingWorker([classify_queue(connection)], connection=connection, serializer=SERIALIZER)
    worker.batch_size = batch_size
    worker.work(burst=True, with_scheduler=False)
    return worker
