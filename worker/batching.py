"""An RQ worker that runs queued classify jobs together: one forward pass, each job finished on its own.

RQ hands a worker one job at a time. When that job is a classify job, :class:`BatchingWorker` also claims
the classify jobs already waiting in the same queue (up to CLASSIFY_BATCH_SIZE in all), computes all their
outcomes in one go (links fetched concurrently, one forward pass with dynamic padding), hands each job its
own outcome (the jobs are :class:`worker.jobs.ClassifyJob` objects, whose ``prepared`` carries it), and then
lets RQ perform each job in turn with RQ's own ``perform_job``: each job's function finishes with the outcome
it carries, replies, and RQ records its result, status, registries and retries exactly as for any job. Other jobs on the
queue (``worker.admin.status``/``rollback``) are never claimed: they stay where they are and run normally.

Bookkeeping for the claimed jobs mirrors RQ's dequeue: each is moved atomically from the queue to the queue's
intermediate list (as ``LMOVE`` does), then gets an execution (StartedJobRegistry, worker executions) and the
STARTED status before the batch is computed, so a crash mid-batch leaves them where RQ's maintenance finds
them (intermediate queue / started registry) and they end up failed or retried, never lost.

It is a SimpleWorker: jobs run in this process, not in a forked child. The model is loaded once and kept,
and CUDA cannot be used in a child forked after the parent initialised it.

Leases. Each execution (a job in hand) holds a short lease in RQ: its StartedJobRegistry score and its
execution keys expire JOB_LEASE_S after they were last renewed. While :meth:`BatchingWorker.execute_job`
runs anything (a batch, an admin job, a training), a heartbeat thread renews every execution of this worker
and the worker's own key every HEARTBEAT_INTERVAL_S, exactly as RQ's forking worker does from its monitor
loop (``Execution.heartbeat``, ``BaseWorker.heartbeat``), so a live worker keeps its jobs however long a batch
lasts (slow links, Slack rate limits). When the worker dies (SIGKILL, OOM, a container killed), nothing renews
them: within JOB_LEASE_S the lease lapses, and the next maintenance of any live worker (every
MAINTENANCE_INTERVAL_S) hands each job back. A job abandoned this way is re-enqueued at once rather than after
its first Retry interval: the failure was the worker's, not the job's, and a delayed retry would wait for RQ's
scheduler, whose lock a killed worker keeps for a minute. With the defaults a killed worker's request is
answered about 10–20 s after the kill when another worker is running.

A dead Slack token. A job that meets ``invalid_auth``, ``token_revoked`` or ``account_inactive`` is not retried
against it and not failed: :meth:`BatchingWorker.handle_exception` records the token as revoked in Redis
(``store.slack.TokenState``, for readiness and ``newsbot_slack_token_valid``), logs one line, and the job goes back
to the front of its queue without using up a retry (:class:`LeasedJob`). Then, before each dequeue
(:meth:`BatchingWorker.check_for_suspension`), a worker whose token is recorded as revoked takes no job: it keeps
its heartbeat and maintenance, asks auth.test every TOKEN_CHECK_INTERVAL_S, and resumes (clearing the record)
once the token works again, or once it runs with a new token. The jobs wait in the queue meanwhile: nothing is
lost, and nobody is told of a failure that a new token mends.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from redis.exceptions import RedisError
from rq import SimpleWorker
from rq.exceptions import AbandonedJobError, NoSuchJobError, StopRequested
from rq.job import Job
from rq.queue import Queue
from rq.timeouts import JobTimeoutException
from rq.worker import WorkerStatus
from slack_sdk.errors import SlackClientError

from common.jobs import CLASSIFY_JOB, ClassifyRequest
from store.queues import JOB_LEASE_S
from store.record import as_str
from store.slack import clear_revoked, mark_revoked, token_revoked, token_state
from telemetry import metrics
from worker import jobs
from worker.health import LoopClock
from worker.jobs import ClassifyJob
from worker.pipeline import classify_requests, fetch_phases
from worker.slack import check_token, dead_token_reason

log = logging.getLogger(__name__)

# LREM from the queue and RPUSH onto its intermediate list, atomically: a job is claimed by one worker only.
_CLAIM = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
    redis.call('RPUSH', KEYS[2], ARGV[1])
    return 1
end
return 0
"""
# How far down the queue to look for classify jobs, in multiples of the batch room left.
_PEEK_FACTOR = 4
# How often this worker runs RQ's maintenance, which hands the jobs of a dead worker back (retry or failed).
# Real only with a short worker TTL (store.queues.WORKER_TTL_S): RQ looks at its maintenance clock only
# between two blocking dequeues of WORKER_TTL_S - 15 s.
MAINTENANCE_INTERVAL_S = 5
# How often the heartbeat thread renews the leases of the jobs in hand (several times per JOB_LEASE_S, so that
# a Redis hiccup or a thread briefly starved of the GIL does not lose a live worker's jobs).
HEARTBEAT_INTERVAL_S = 2.0

# How long a worker that stops waits for its scheduler process to stop after SIGTERM before killing it.
SCHEDULER_STOP_S = 5.0

# While the Slack token is recorded as revoked: how often a waiting worker asks auth.test whether it works again,
# and how long it sleeps between two looks at the record (a record cleared by another worker is seen this soon).
TOKEN_CHECK_INTERVAL_S = 30.0
TOKEN_WAIT_STEP_S = 1.0

# Set while this worker's maintenance runs: a job it finds abandoned is re-enqueued without its retry interval.
_in_maintenance = threading.local()


def count_abandoned(job: Job, exc_type: type[BaseException], exc_value: BaseException, traceback: Any) -> bool:
    """An exception handler of every worker: RQ's maintenance calls it for each job it finds abandoned (its worker
    died), which ``newsbot_rq_abandoned_jobs_total{queue}`` counts. True: the next handler runs too."""
    if issubclass(exc_type, AbandonedJobError):
        metrics.ABANDONED_JOBS.labels(queue=job.origin).inc()
    return True


class LeasedJob(ClassifyJob):
    """The BatchingWorker's job class: a job handed back by maintenance (its worker died) is retried at once; a
    job held back by a dead Slack token (``held_back``: Slack's error) goes back to the front of its queue, its
    retries untouched."""

    held_back: str | None = None

    def get_retry_interval(self) -> int:
        if getattr(_in_maintenance, "active", False):
            return 0
        return super().get_retry_interval()

    @property
    def should_retry(self) -> bool:
        return self.held_back is not None or bool(super().should_retry)

    def retry(self, queue: Queue, pipeline: Any) -> None:
        if self.held_back is None:
            super().retry(queue, pipeline)
            return
        self.held_back = None
        queue._enqueue_job(self, pipeline=pipeline, at_front=True)


class _RoutineMaintenanceAtDebug(logging.Filter):
    """RQ logs "Worker …: cleaning registries for queue: …" at INFO at every maintenance, which this worker runs
    every MAINTENANCE_INTERVAL_S (5 s): most of a worker's log, tens of thousands of lines a day. The record is
    demoted to DEBUG, shown only where RQ's logger is set to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "cleaning registries" in record.msg and record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


_routine_maintenance = _RoutineMaintenanceAtDebug()


class BatchingWorker(SimpleWorker):
    """A SimpleWorker that batches waiting classify jobs and keeps its jobs' leases alive (module docstring)."""

    batch_size: int = 32
    job_class = LeasedJob
    token_check_interval_s: float = TOKEN_CHECK_INTERVAL_S
    token_wait_step_s: float = TOKEN_WAIT_STEP_S
    _token_seen: bool = False  # whether this worker has looked at the token's record since it started
    _token_told: bool = False  # whether this worker said, in its one line, that the token is dead

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Liveness (worker/health.py): turned by the loop's own heartbeats, armed per job, beaten by the
        # heartbeat thread.
        self.clock = LoopClock()
        self._loop_thread: threading.Thread | None = None
        self.push_exc_handler(count_abandoned)  # type: ignore[no-untyped-call]

    def work(self, *args: Any, **kwargs: Any) -> bool:
        self._loop_thread = threading.current_thread()
        self.clock.turn()
        return bool(super().work(*args, **kwargs))

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """RQ's, which its loop calls at every turn (waiting for jobs: every few seconds, after each job, and
        on every reconnect try while Redis is away): the job loop's clock turns first, whether Redis answers or
        not. The heartbeat thread's renewals (another thread) do not turn it."""
        if threading.current_thread() is self._loop_thread and not self.clock.busy:
            self.clock.turn()
        super().heartbeat(timeout, pipeline)

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """A job's lease: short, renewed by the heartbeat thread for as long as this worker runs it."""
        return JOB_LEASE_S

    def run_maintenance_tasks(self) -> None:
        """RQ's maintenance, except that a worker asked to stop does not start its scheduler again (RQ stops the
        scheduler at the warm-shutdown request, and its maintenance would fork a new one just to stop it)."""
        if self._stop_requested:
            self.clean_registries()
            self.clean_group_registries()  # type: ignore[no-untyped-call]
            return
        super().run_maintenance_tasks()  # type: ignore[no-untyped-call]

    def stop_scheduler(self) -> None:
        """RQ's, with a bound: a scheduler process that does not stop within SCHEDULER_STOP_S of SIGTERM (forked
        from a busy process, it may not have installed its own handler yet) is killed, so that a worker asked to
        stop always exits instead of waiting on it forever."""
        process = self.scheduler._process if self.scheduler is not None else None
        if process is None or not process.pid:
            return
        with suppress(OSError):
            os.kill(process.pid, signal.SIGTERM)
        process.join(SCHEDULER_STOP_S)
        if process.is_alive():
            log.warning("scheduler process %s ignored SIGTERM for %ss; killing it", process.pid, SCHEDULER_STOP_S)
            process.kill()
            process.join(5)

    # --- a dead Slack token ----------------------------------------------------------------------------------------

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        """RQ's, except for a job that met a dead token: recorded, logged once, held back (no traceback)."""
        reason = dead_token_reason(exc_info[1] if len(exc_info) > 1 else None)
        if reason is None:
            super().handle_exception(job, *exc_info)
            return
        self.token_dead(reason)
        if isinstance(job, LeasedJob):
            job.held_back = reason
        log.info("job %s goes back to the queue: Slack refuses the token (%s)", job.id, reason)

    def token_dead(self, reason: str) -> None:
        """Record the token as revoked; the first process to do so says it in one line."""
        token = jobs.runtime().settings.slack_bot_token
        try:
            first = mark_revoked(self.connection, token, reason, self.name)
        except RedisError as exc:
            log.warning("Slack refuses the token (%s); could not record it (%s)", reason, exc)
            return
        if first:
            self._token_told = True
            log.error(
                "Slack refuses the bot token (%s): jobs wait in the queue, none is retried against it; workers ask"
                " auth.test every %gs and resume once it works. Reinstall the app or set a new SLACK_BOT_TOKEN.",
                reason,
                self.token_check_interval_s,
            )

    def token_valid(self) -> str | None:
        """Ask auth.test: None when the token works (any revoked record is cleared), else why it does not
        (Slack's error, or why Slack could not be asked)."""
        try:
            reason = check_token(jobs.runtime().replier.client)
        except (SlackClientError, OSError) as exc:
            return f"auth.test unanswered: {exc}"
        if reason is not None:
            self.token_dead(reason)
            return reason
        self._token_told = False
        cleared = clear_revoked(self.connection)
        if cleared is not None:
            log.warning("Slack accepts the bot token again (auth.test): jobs are served (it was %s)", cleared.reason)
        return None

    def check_for_suspension(self, burst: bool) -> None:
        """RQ's ``rq suspend`` check, then: while this worker's token is recorded as revoked, take no job."""
        super().check_for_suspension(burst)
        self.wait_for_token(burst)

    def wait_for_token(self, burst: bool) -> None:
        """Take no job while the token is recorded as revoked (module docstring); return once it works again."""
        try:
            token = jobs.runtime().settings.slack_bot_token
        except RuntimeError:
            return  # no runtime installed (a bare worker in a test): nothing talks to Slack
        try:
            if not self._token_seen:  # at start: a record about any token is checked once (a new token clears it)
                self._token_seen = True
                if token_state(self.connection) is not None:
                    self.token_valid()
            reason = token_revoked(self.connection, token)
        except RedisError:
            return  # the dequeue that follows meets the outage and waits for Redis as it always does
        if reason is None:
            return
        if burst:
            log.info("Slack refuses the token (%s): a burst worker stops; the jobs stay queued", reason)
            raise StopRequested
        if not self._token_told:  # this process's one line (the worker that recorded it said it already)
            self._token_told = True
            log.error(
                "Slack refuses the bot token (%s, recorded in Redis): no job is taken, they wait in the"
                " queue; auth.test every %gs. Reinstall the app or set a new SLACK_BOT_TOKEN.",
                reason,
                self.token_check_interval_s,
            )
        before = self.get_state()
        self.set_state(WorkerStatus.SUSPENDED)
        checked = time.monotonic()
        try:
            while not self._stop_requested:
                time.sleep(self.token_wait_step_s)
                try:
                    self.heartbeat()
                    if self.should_run_maintenance_tasks:
                        self.run_maintenance_tasks()
                    if time.monotonic() - checked >= self.token_check_interval_s:
                        checked = time.monotonic()
                        if self.token_valid() is None:
                            return
                    if token_revoked(self.connection, token) is None:
                        log.info("the Slack token's record was cleared: jobs are served")
                        self._token_told = False
                        return
                except RedisError as exc:  # Redis away for a moment: keep waiting, never die of it
                    log.warning("waiting for a valid Slack token: Redis unavailable (%s)", exc)
        finally:
            self.set_state(before)

    def clean_registries(self) -> None:
        """RQ's maintenance; a job whose worker died is re-enqueued at once (see :class:`LeasedJob`). Its routine
        log line is at DEBUG (:class:`_RoutineMaintenanceAtDebug`)."""
        self.log.addFilter(_routine_maintenance)  # once: a logger keeps one copy of a filter
        _in_maintenance.active = True
        try:
            super().clean_registries()  # type: ignore[no-untyped-call]
        finally:
            _in_maintenance.active = False

    def renew_leases(self) -> None:
        """Renew the lease of every execution of this worker, and the worker's own key, in one round trip.

        The same calls as RQ's ``maintain_heartbeats``. An execution that finished meanwhile is not brought
        back: its registry entries are only updated if present (XX), and the bare hash that ``HSET`` would
        recreate is deleted again, as RQ does for a job's hash.
        """
        executions = list(self.executions.values())
        with self.connection.pipeline() as pipe:
            self.heartbeat(pipeline=pipe)  # the worker's hash, its TTL and its executions index
            marks: list[int] = []
            for execution in executions:
                marks.append(len(pipe))
                execution.heartbeat(execution.job.started_job_registry, JOB_LEASE_S, pipeline=pipe)
            results = pipe.execute()
            if results[0] == 1:  # the worker's hash had expired: write it whole again, with its TTL
                pipe.hset(self.key, mapping=self.serialize())
                pipe.expire(self.key, self.worker_ttl + 60)
            for execution, mark in zip(executions, marks, strict=True):
                if results[mark] == 1:  # finished and deleted before this renewal: no resurrected hash
                    pipe.delete(execution.key)
            if len(pipe):
                pipe.execute()

    @contextmanager
    def heartbeats(self) -> Iterator[None]:
        """Renew this worker's leases every HEARTBEAT_INTERVAL_S in a background thread while the block runs."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(HEARTBEAT_INTERVAL_S):
                self.clock.beat()
                try:
                    self.renew_leases()
                except Exception:  # Redis away for a moment: the next beat tries again
                    log.warning("could not renew the job leases of %s", self.name, exc_info=True)

        thread = threading.Thread(target=beat, name=f"heartbeat-{self.name}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(HEARTBEAT_INTERVAL_S + 5)

    def claim_waiting(self, queue: Queue, limit: int) -> list[Job]:
        """Up to ``limit`` classify jobs waiting in ``queue``, claimed for this worker (others are left)."""
        if limit <= 0:
            return []
        window = self.connection.lrange(queue.key, 0, limit * _PEEK_FACTOR)
        ids = [as_str(i) for i in window]
        claim = self.connection.register_script(_CLAIM)
        claimed: list[Job] = []
        for job_id in ids:
            try:
                job = self.job_class.fetch(job_id, connection=self.connection, serializer=self.serializer)
            except NoSuchJobError:
                continue
            if job.func_name != CLASSIFY_JOB:
                continue
            if claim(keys=[queue.key, queue.intermediate_queue_key], args=[job_id]) != 1:
                continue  # another worker took it meanwhile
            claimed.append(job)
            if len(claimed) >= limit:
                break
        return claimed

    def execute_job(self, job: Job, queue: Queue) -> None:
        self.clock.job_started(job.timeout or queue.DEFAULT_TIMEOUT)
        try:
            with self.heartbeats():
                if job.func_name != CLASSIFY_JOB or self.batch_size <= 1:
                    super().execute_job(job, queue)
                else:
                    self.execute_batch(job, queue)
        finally:
            self.clock.turn()

    def perform_job(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> bool:
        """RQ's; each job of a batch gets its own timeout on the loop's clock."""
        self.clock.job_started(job.timeout or queue.DEFAULT_TIMEOUT)
        return bool(super().perform_job(job, queue, *args, **kwargs))

    def execute_batch(self, job: Job, queue: Queue) -> None:
        """Claim the waiting classify jobs, compute them together, then let RQ perform each in turn."""
        batch = [job, *self.claim_waiting(queue, self.batch_size - 1)]
        if len(batch) > 1:
            log.info("batching %d classify jobs", len(batch))
        executions: list[Any] = []
        for index, member in enumerate(batch):
            executions.append(self.prepare_execution(member))
            # The first job came through RQ's dequeue (LMOVE only when serving a single queue); the claimed
            # ones are always on the intermediate list.
            self.prepare_job_execution(member, remove_from_intermediate_queue=index > 0 or len(self.queues) == 1)
        try:
            # Jobs that fetch no link are computed and answered first: a slow page never holds up pasted text.
            for phase in fetch_phases(batch, lambda m: m.args[0] if m.args else None, self._max_links()):
                self._compute(phase, queue)
                for member in phase:
                    # RQ's own path: timeout, result, registries, Retry, failure, callbacks.
                    self.perform_job(member, queue, executions[batch.index(member)])
        finally:
            for member in batch:
                if isinstance(member, ClassifyJob):
                    member.prepared = None
            self.set_state(WorkerStatus.IDLE)

    def _max_links(self) -> int:
        return jobs.runtime().settings.max_links_per_message

    def _compute(self, batch: list[Job], queue: Queue) -> None:
        """Hand each job of ``batch`` its outcome, computed together; on any trouble each job computes its own."""
        members: list[ClassifyJob] = []
        requests: list[ClassifyRequest] = []
        for member in batch:
            if not isinstance(member, ClassifyJob):
                continue
            try:
                requests.append(ClassifyRequest.from_dict(member.args[0]))
            except Exception as exc:  # noqa: BLE001 - a malformed payload fails in its own job, with RQ's bookkeeping
                log.warning("job %s not batched: %s", member.id, exc)
                continue
            members.append(member)
        if not members:
            return
        timeout = min((m.timeout or queue.DEFAULT_TIMEOUT) for m in batch)
        self.clock.job_started(timeout)
        rt = jobs.runtime()
        try:
            with self.death_penalty_class(timeout, JobTimeoutException, job_id=batch[0].id):
                outcomes = classify_requests(requests, rt.models, rt.link_fetcher(), rt.settings.max_links_per_message)
        except Exception:
            log.exception("batch of %d could not be computed together; each job runs on its own", len(batch))
            return
        for member, outcome in zip(members, outcomes, strict=True):
            member.prepared = outcome
