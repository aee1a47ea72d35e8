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
"""

from __future__ import annotations

import logging
from typing import Any

from rq import SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.queue import Queue
from rq.timeouts import JobTimeoutException
from rq.worker import WorkerStatus

from common.jobs import CLASSIFY_JOB, ClassifyRequest
from common.state import HEARTBEAT_MARGIN_S, as_str
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
# Real only with a short worker TTL (common.state.WORKER_TTL_S).
MAINTENANCE_INTERVAL_S = 20


class BatchingWorker(SimpleWorker):
    """A SimpleWorker that batches waiting classify jobs (see the module docstring)."""

    batch_size: int = 32
    job_class = ClassifyJob

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """How long this job's execution stays valid without a heartbeat.

        A SimpleWorker cannot heartbeat while a job runs in its own thread, so the TTL must cover the whole
        run: the job's timeout for the batch computation, and as much again for finishing the batch's other
        jobs one by one (Slack calls, rate-limit waits). When the worker is killed (SIGKILL, OOM, power),
        nothing renews it, and once it lapses RQ's maintenance in any live worker retries the job (or fails
        it for good, and the user is told). RQ's SimpleWorker default adds 60 s; this recovers sooner.
        """
        timeout = job.timeout if job.timeout and job.timeout > 0 else self.job_monitoring_interval
        return int(2 * timeout) + HEARTBEAT_MARGIN_S

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
        if job.func_name != CLASSIFY_JOB or self.batch_size <= 1:
            super().execute_job(job, queue)
            return
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
