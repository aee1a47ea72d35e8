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
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from rq import SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.queue import Queue
from rq.timeouts import JobTimeoutException
from rq.worker import WorkerStatus

from common.jobs import CLASSIFY_JOB, ClassifyRequest
from store.queues import JOB_LEASE_S
from store.record import as_str
from worker import jobs
from worker.jobs import ClassifyJob
from worker.pipeline import classify_requests, fetch_phases

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

# Set while this worker's maintenance runs: a job it finds abandoned is re-enqueued without its retry interval.
_in_maintenance = threading.local()


class LeasedJob(ClassifyJob):
    """The BatchingWorker's job class: a job handed back by maintenance (its worker died) is retried at once."""

    def get_retry_interval(self) -> int:
        if getattr(_in_maintenance, "active", False):
            return 0
        return super().get_retry_interval()


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
        with self.heartbeats():
            if job.func_name != CLASSIFY_JOB or self.batch_size <= 1:
                super().execute_job(job, queue)
            else:
                self.execute_batch(job, queue)

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
        rt = jobs.runtime()
        try:
            with self.death_penalty_class(timeout, JobTimeoutException, job_id=batch[0].id):
                outcomes = classify_requests(requests, rt.models, rt.link_fetcher(), rt.settings.max_links_per_message)
        except Exception:
            log.exception("batch of %d could not be computed together; each job runs on its own", len(batch))
            return
        for member, outcome in zip(members, outcomes, strict=True):
            member.prepared = outcome
