"""Thin job functions that RQ calls by dotted path (``worker.jobs.classify``).

They run inside the long-lived worker process, which installed a :class:`Runtime` (loaded model, Slack
client, link fetcher) before it started working; a job never loads a model itself.

A classify job answers one Slack message. When the BatchingWorker ran it in a batch, the job arrives as a
:class:`ClassifyJob` carrying the outcome its batch computed; otherwise it computes its own. It then
finishes in three separate steps: :func:`store_records` (one durable record per classified article, see
below), :func:`reply` (one Slack message, posted at most once per job thanks to its reply mark) and
:func:`job_result` (what RQ keeps: the first article's entry plus ``record_id``, ``articles`` (one entry per
article: its result and record id, or its error), ``dropped_urls``, ``batch`` (the forward pass it shared) and
``ts``). Each classified article's record is ``newsbot:classification:<record id>``: the record id is the job
id for a message with one article, and ``<job id>:<n>`` (n = 1, 2, …) for the n-th article of a message with
several. The reply lists them all, each article with its own feedback buttons carrying its record id.

Retention: a record expires after RECORD_TTL_DAYS unless someone gives feedback on it (then it is kept, see
:mod:`store.deliveries`), and a /classify-news job forgets the command's ``response_url`` once its reply is
posted (:func:`forget_response_url`): RQ keeps the job for JOB_RESULT_TTL_S, the URL is needed only once.

Two sources differ: a ``thread`` request (an empty mention inside a thread) first reads the thread's first
message (conversations.replies) and classifies that; a ``watch`` request (a watched channel's new article)
finishes with :func:`finish_watch` (a reaction, cross-posts to desks: worker.desks) and never posts an error.
"""

from __future__ import annotations

import functools
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from typing import Any

from redis import Redis
from rq import get_current_job
from rq.job import Job

from common.articles import message_text
from common.exceptions import LinkError, NewsbotError, ThreadParentError
from common.jobs import ClassifyRequest
from common.logs import log_context
from common.settings import Settings
from store import activity, classifications, deliveries, live
from store.classifications import ClassificationRecord
from store.deliveries import ReplyMark
from telemetry import metrics
from ui.newsroom import with_notes
from ui.replies import error_message, reply_message
from worker import desks
from worker.classifier import ModelService
from worker.fetch import GuardedFetcher
from worker.pipeline import Outcome, classify_requests
from worker.slack import SlackReplier, dead_token_reason, thread_parent

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What jobs share within one worker process."""

    settings: Settings
    connection: Redis
    models: ModelService
    replier: SlackReplier
    fetcher: GuardedFetcher | None = None

    def link_fetcher(self) -> GuardedFetcher:
        if self.fetcher is None:
            self.fetcher = GuardedFetcher.from_settings(self.settings)
        return self.fetcher


class ClassifyJob(Job):
    """An RQ job as the BatchingWorker runs it: a classify job of a batch carries its precomputed outcome."""

    prepared: Outcome | None = None


_runtime: Runtime | None = None


def install(runtime: Runtime) -> None:
    global _runtime
    _runtime = runtime


def runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError("worker runtime not installed: jobs run only inside `python -m worker`")
    return _runtime


def is_last_attempt(job: Job | None) -> bool:
    """True when RQ will not retry this job if it fails now."""
    return job is None or not (job.retries_left is not None and job.retries_left > 0)


def reference_for(job_id: str) -> str:
    """A short reference a user can quote; the log line of the failure names it with the full job id."""
    return job_id.rsplit("-", 1)[-1][:10]


JobFunction = Callable[[dict[str, Any]], dict[str, Any]]


def in_job_context(func: JobFunction) -> JobFunction:
    """Run a job function with its RQ job id and the served model version in every log line it writes."""

    @functools.wraps(func)
    def wrapper(payload: dict[str, Any]) -> dict[str, Any]:
        job = get_current_job()
        version = _runtime.models.version if _runtime is not None else None
        with log_context(job_id=job.id if job else None, model_version=version):
            return func(payload)

    return wrapper


def training_run(func: JobFunction) -> JobFunction:
    """A training job, in its job's log context, counted by outcome in ``newsbot_training_runs_total``:
    ``promoted``, ``kept`` (trained but not promoted) or ``failed`` (an error result, or an exception)."""

    @functools.wraps(func)
    def wrapper(payload: dict[str, Any]) -> dict[str, Any]:
        try:
            result = func(payload)
        except BaseException:
            metrics.TRAINING_RUNS.labels(outcome="failed").inc()
            raise
        outcome = "failed" if "error" in result else "promoted" if result.get("promoted") else "kept"
        metrics.TRAINING_RUNS.labels(outcome=outcome).inc()
        return result

    return in_job_context(wrapper)


def observe_latency(job: Job | None, source: str) -> None:
    """``newsbot_job_latency_seconds{source}``: from the job's creation (its first enqueue: a retried job's
    ``enqueued_at`` is reset, the user's wait is not) to now, when its reply has been posted."""
    started = job.created_at if job is not None else None
    if started is not None:
        metrics.JOB_LATENCY.labels(source=source).observe(max(0.0, (datetime.now(UTC) - started).total_seconds()))


@in_job_context
def classify(payload: dict[str, Any]) -> dict[str, Any]:
    """Classify one Slack message and reply where it came from; the returned dict is the job's result."""
    rt = runtime()
    job = get_current_job()
    prepared = job.prepared if isinstance(job, ClassifyJob) else None
    request = prepared.request if prepared is not None else ClassifyRequest.from_dict(payload)
    job_id = job.id if job else request.request_id
    try:
        outcome = prepared
        if request.source == "thread" and not request.text.strip():
            outcome = None  # its batch had no text for it: read the thread's first message, then classify that
            try:
                parent = thread_parent(rt.replier.client, request.channel, request.thread_ts)
                request = replace(request, text=message_text(parent))
            except ThreadParentError as exc:
                outcome = Outcome(request=request, error=exc)
        if outcome is None:  # not part of a batch (or the batch could not be computed): on its own
            outcome = classify_requests([request], rt.models, rt.link_fetcher(), rt.settings.max_links_per_message)[0]
        if outcome.error is not None and not isinstance(outcome.error, NewsbotError):
            raise outcome.error
        result = finish(rt, job_id, outcome)
        observe_latency(job, request.source)
        return result
    except Exception as exc:
        if dead_token_reason(exc) is not None:
            raise  # a dead token: the worker holds the job back until the token works (worker.batching)
        if not is_last_attempt(job):
            log.warning("job %s failed; RQ will retry it (%s retries left)", job_id, job and job.retries_left)
            raise
        reference = reference_for(job_id)
        log.exception("job %s failed for good (reference %s)", job_id, reference)
        if request.source == "watch":
            raise  # nobody asked: a watched channel's message is never answered with an error
        try:
            deliver(rt, job_id, request, error_message(NewsbotError.user_message, reference))
        except Exception:
            log.exception("could not tell the user that job %s failed", job_id)
        raise


def deliver(rt: Runtime, job_id: str, request: ClassifyRequest, message: dict[str, Any]) -> str:
    """Post ``message`` once per job: a retried job that already replied does not post again."""
    mark = deliveries.reply_mark(rt.connection, job_id)
    if mark is not None:
        log.info("job %s already replied; not posting again", job_id)
        return mark.ts
    ts = rt.replier.post(request, message)
    deliveries.put_reply_mark(rt.connection, ReplyMark(job_id=job_id, ts=ts))
    job = get_current_job()
    if job is not None and job.id == job_id:
        forget_response_url(job)
    return ts


def forget_response_url(job: Job | None) -> None:
    """Rewrite the job's stored payload without ``response_url`` (after the reply that needed it is posted).

    Only the job hash's ``data`` field is written (RQ's own encoding: the serialized call, zlib-compressed), so
    its status and bookkeeping are untouched. A retry that happens before the reply still has the URL; one
    after it finds the reply mark and posts nothing.
    """
    if job is None or not job.args or not isinstance(job.args[0], dict) or not job.args[0].get("response_url"):
        return
    payload = {k: v for k, v in job.args[0].items() if k != "response_url"}
    job.args = (payload, *job.args[1:])
    job.connection.hset(job.key, "data", zlib.compress(job.data))


def record_id_for(job_id: str, index: int, count: int) -> str:
    return job_id if count == 1 else f"{job_id}:{index + 1}"


def finish(rt: Runtime, job_id: str, outcome: Outcome) -> dict[str, Any]:
    """Store the records, reply, and build the job's result."""
    if outcome.request.source == "watch":
        return finish_watch(rt, job_id, outcome)
    if isinstance(outcome.error, NewsbotError):
        log.info("job %s refused: %s", job_id, outcome.error)
        deliver(rt, job_id, outcome.request, error_message(outcome.error.user_message))
        return {"error": type(outcome.error).__name__, "message": str(outcome.error)}
    records = store_records(
        rt.connection, job_id, outcome, ttl_s=rt.settings.record_ttl_days * 24 * 3600, tz=rt.settings.newsroom_tz
    )
    for item in outcome.articles:
        if item.classified:
            metrics.CONFIDENCE.observe(item.confidence)
    started = time.perf_counter()
    ts = reply(rt, job_id, outcome)
    reply_ms = (time.perf_counter() - started) * 1000
    if ts:
        classifications.set_reply_ts(rt.connection, records, ts)
    return job_result(outcome, ts, reply_ms)


def finish_watch(rt: Runtime, job_id: str, outcome: Outcome) -> dict[str, Any]:
    """Answer a watched channel's article (see worker.desks). Nobody asked, so the bot acts on its own only on the
    answers its served model is sure of: their category reaction, a cross-post to their desk, and a thread reply
    with them as WATCH_REPLY says; an unsure article gets none of these, only (when its label has a desk) a thread
    note saying why it was not cross-posted. Never an error message: the message was not addressed to the bot."""
    settings = rt.settings
    request = outcome.request
    if outcome.error is not None:
        log.info("watched message %s/%s not classified: %s", request.channel, request.thread_ts, outcome.error)
        return {"error": type(outcome.error).__name__, "message": str(outcome.error)}
    store_records(
        rt.connection, job_id, outcome, ttl_s=rt.settings.record_ttl_days * 24 * 3600, tz=rt.settings.newsroom_tz
    )
    classified = [item for item in outcome.articles if item.classified]
    if not classified:
        log.info("watched message %s/%s: no article could be read", request.channel, request.thread_ts)
        return job_result(outcome, "", 0.0)
    sure = [item for item in classified if not item.unsure]
    started = time.perf_counter()
    reactions = desks.react(rt, job_id, request, sure) if settings.watch_reply != "thread" and sure else []
    routed, notes = desks.route_articles(rt, job_id, request, classified)
    ts = ""
    answered = settings.watch_reply != "reaction" and bool(sure)
    if answered or notes:
        message = reply_message(sure) if answered else {"text": "", "blocks": []}
        message = with_notes(message, notes)
        with desks.pacer(rt).slot("chat.postMessage", request.channel):
            ts = deliver(rt, job_id, request, message)
        if ts and answered:
            classifications.set_reply_ts(rt.connection, [item.record_id for item in sure if item.record_id], ts)
    result = job_result(outcome, ts, (time.perf_counter() - started) * 1000)
    unsure = len(classified) - len(sure)
    return {**result, "reactions": reactions, "routed": routed, "unrouted": len(notes), "unsure": unsure}


def store_records(connection: Redis, job_id: str, outcome: Outcome, *, ttl_s: int, tz: tzinfo) -> list[str]:
    """Give each classified article its record id and store its record (expiring after ``ttl_s`` unless
    feedback arrives; 0: never), counted for the day in ``tz`` (the newsroom's); the record ids."""
    created = datetime.now(UTC)  # its day is the truncated created_at's: days begin on whole seconds
    created_at = created.isoformat(timespec="seconds")
    records: list[str] = []
    answered: dict[str, list[tuple[str, bool]]] = {}
    for index, item in enumerate(outcome.articles):
        if not item.classified or item.article is None:
            continue
        item.record_id = record_id_for(job_id, index, len(outcome.articles))
        classifications.put_classification(
            connection,
            ClassificationRecord(
                record_id=item.record_id,
                title=item.article.title,
                body=item.article.body,
                url=item.url or "",
                slug=item.slug,
                model_version=item.model_version,
                channel=outcome.request.channel,
                created_at=created_at,
                labels=item.labels,
                unsure=item.unsure,
            ),
            ttl_s,
        )
        records.append(item.record_id)
        answered.setdefault(item.model_version, []).append((item.record_id, item.unsure))
    activity.count_classifications(connection, records, outcome.request.user, tz=tz)
    for version, items in answered.items():
        live.count_answered(connection, version, items, tz=tz, at=created.timestamp())  # the record's day
    return records


def reply(rt: Runtime, job_id: str, outcome: Outcome) -> str:
    """Post the one reply to the message (once per job); the reply's ts ("" through response_url)."""
    settings = rt.settings
    message = reply_message(outcome.articles, outcome.dropped_urls, settings.max_links_per_message)
    return deliver(rt, job_id, outcome.request, message)


def job_result(outcome: Outcome, ts: str, reply_ms: float) -> dict[str, Any]:
    """What RQ keeps as the job's result: the first classified article's entry and every article's."""
    timings = {**outcome.timings_ms, "reply": reply_ms}
    articles = [
        {**item.to_dict(), "timings_ms": dict(timings)} if item.classified else item.to_dict()
        for item in outcome.articles
    ]
    extra = {"articles": articles, "dropped_urls": outcome.dropped_urls, "batch": outcome.batch, "ts": ts}
    first = next((a for a in articles if "slug" in a), None)
    if first is None:
        errors = [item.error for item in outcome.articles if item.error is not None]
        name = type(errors[0]).__name__ if errors else LinkError.__name__
        return {"error": name, "message": "; ".join(str(e) for e in errors), **extra}
    return {**first, **extra}
