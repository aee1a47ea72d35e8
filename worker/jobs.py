"""Thin job functions that RQ calls by dotted path (``worker.jobs.classify``).

They run inside the long-lived worker process, which installed a :class:`Runtime` (loaded model, Slack
client, link fetcher) before it started working; a job never loads a model itself.

A classify job answers one Slack message. Its RQ result is the first article's ``ClassifyResult.to_dict()``
plus ``record_id``, ``articles`` (one entry per article: its result and record id, or its error),
``dropped_urls`` and ``batch`` (the forward pass it shared). Each classified article gets a durable record
``newsbot:classification:<record id>``: the record id is the job id for a message with one article, and
``<job id>:<n>`` (n = 1, 2, …) for the n-th article of a message with several. One reply lists them all,
each article with its own feedback buttons carrying its record id.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq import get_current_job
from rq.job import Job

from common.exceptions import LinkError, NewsbotError
from common.jobs import ClassifyRequest, classification_key
from common.settings import Settings
from worker.classifier import ModelService
from worker.fetch import GuardedFetcher
from worker.pipeline import Outcome, classify_requests
from worker.replies import ArticleReply, error_message, reply_message
from worker.slack import SlackReplier

log = logging.getLogger(__name__)

# Marks a job whose reply was posted, so that a retry (of a later step) never posts it twice.
REPLIED_TTL_S = 7 * 24 * 3600
# What a record keeps of an article's text (the model reads 512 tokens; retraining may want more).
RECORD_TEXT_MAX_CHARS = 50_000


@dataclass
class Runtime:
    """What jobs share within one worker process."""

    settings: Settings
    connection: Redis
    models: ModelService
    replier: SlackReplier
    fetcher: GuardedFetcher | None = None
    # Outcomes computed for a whole batch by the BatchingWorker, by job id, taken by each job as it runs.
    prepared: dict[str, Outcome] = field(default_factory=dict)

    def link_fetcher(self) -> GuardedFetcher:
        if self.fetcher is None:
            self.fetcher = GuardedFetcher.from_settings(self.settings)
        return self.fetcher


_runtime: Runtime | None = None


def install(runtime: Runtime) -> None:
    global _runtime
    _runtime = runtime


def runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError("worker runtime not installed: jobs run only inside `python -m worker`")
    return _runtime


def replied_key(job_id: str) -> str:
    return f"newsbot:replied:{job_id}"


def is_last_attempt(job: Job | None) -> bool:
    """True when RQ will not retry this job if it fails now."""
    return job is None or not (job.retries_left is not None and job.retries_left > 0)


def reference_for(job_id: str) -> str:
    """A short reference a user can quote; the log line of the failure names it with the full job id."""
    return job_id.rsplit("-", 1)[-1][:10]


def classify_batch(requests: dict[str, ClassifyRequest]) -> None:
    """Compute the outcomes of several jobs in one forward pass; each job then finishes with its own."""
    rt = runtime()
    outcomes = classify_requests(
        list(requests.values()), rt.models, rt.link_fetcher(), rt.settings.max_links_per_message
    )
    rt.prepared.update(zip(requests, outcomes, strict=True))


def classify(payload: dict[str, Any]) -> dict[str, Any]:
    """Classify one Slack message and reply where it came from; the returned dict is the job's result."""
    rt = runtime()
    request = ClassifyRequest.from_dict(payload)
    job = get_current_job()
    job_id = job.id if job else request.request_id
    try:
        outcome = rt.prepared.pop(job_id, None)
        if outcome is None:  # not part of a batch (or the batch could not be prepared): on its own
            outcome = classify_requests([request], rt.models, rt.link_fetcher(), rt.settings.max_links_per_message)[0]
        if outcome.error is not None and not isinstance(outcome.error, NewsbotError):
            raise outcome.error
        return finish(rt, job_id, outcome)
    except Exception:
        if not is_last_attempt(job):
            log.warning("job %s failed; RQ will retry it (%s retries left)", job_id, job and job.retries_left)
            raise
        reference = reference_for(job_id)
        log.exception("job %s failed for good (reference %s)", job_id, reference)
        try:
            deliver(rt, job_id, request, error_message(NewsbotError.user_message, reference))
        except Exception:
            log.exception("could not tell the user that job %s failed", job_id)
        raise


def deliver(rt: Runtime, job_id: str, request: ClassifyRequest, message: dict[str, Any]) -> str:
    """Post ``message`` once per job: a retried job that already replied does not post again."""
    already = rt.connection.get(replied_key(job_id))
    if already is not None:
        log.info("job %s already replied; not posting again", job_id)
        return already.decode() if isinstance(already, bytes) else str(already)
    ts = rt.replier.post(request, message)
    rt.connection.set(replied_key(job_id), ts, ex=REPLIED_TTL_S)
    return ts


def record_id_for(job_id: str, index: int, count: int) -> str:
    return job_id if count == 1 else f"{job_id}:{index + 1}"


def finish(rt: Runtime, job_id: str, outcome: Outcome) -> dict[str, Any]:
    """Store the records, reply, and build the job's result."""
    request = outcome.request
    if isinstance(outcome.error, NewsbotError):
        log.info("job %s refused: %s", job_id, outcome.error)
        deliver(rt, job_id, request, error_message(outcome.error.user_message))
        return {"error": type(outcome.error).__name__, "message": str(outcome.error)}

    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    replies: list[ArticleReply] = []
    records: list[str] = []
    for index, item in enumerate(outcome.items):
        if item.result is None or item.article is None:
            error = item.error.user_message if item.error else NewsbotError.user_message
            replies.append(ArticleReply(url=item.url, error=error))
            continue
        record_id = record_id_for(job_id, index, len(outcome.items))
        rt.connection.hset(
            classification_key(record_id),
            mapping={
                "text": item.article.text[:RECORD_TEXT_MAX_CHARS],
                "title": item.article.title,
                "url": item.url or "",
                "slug": item.result.slug,
                "model_version": item.result.model_version,
                "channel": request.channel,
                "ts": "",
                "created_at": created_at,
            },
        )
        records.append(record_id)
        replies.append(ArticleReply(url=item.url, result=item.result, record_id=record_id))

    settings = rt.settings
    started = time.perf_counter()
    message = reply_message(
        replies, settings.confidence_threshold, outcome.dropped_urls, settings.max_links_per_message
    )
    ts = deliver(rt, job_id, request, message)
    reply_ms = (time.perf_counter() - started) * 1000
    if ts:
        with rt.connection.pipeline() as pipe:
            for record_id in records:
                pipe.hset(classification_key(record_id), "ts", ts)
            pipe.execute()

    articles: list[dict[str, Any]] = []
    for reply in replies:
        if reply.result is not None:
            timings = {**reply.result.timings_ms, "reply": reply_ms}
            articles.append({**reply.result.to_dict(), "timings_ms": timings, "record_id": reply.record_id})
        else:
            articles.append({"url": reply.url, "error": reply.error})
    extra = {"articles": articles, "dropped_urls": outcome.dropped_urls, "batch": outcome.batch, "ts": ts}
    first = next((a for a in articles if "slug" in a), None)
    if first is None:
        errors = [item.error for item in outcome.items if item.error is not None]
        name = type(errors[0]).__name__ if errors else LinkError.__name__
        return {"error": name, "message": "; ".join(str(e) for e in errors), **extra}
    return {**first, **extra}
