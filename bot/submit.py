"""Enqueueing jobs for the workers, at most once per Slack delivery."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from redis import Redis
from redis.exceptions import RedisError
from rq import Callback, Queue, Retry
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus

from common.exceptions import NewsbotError, TrainingInProgressError
from common.jobs import (
    CHANNEL_JOB,
    CLASSIFY_JOB,
    RETRAIN_JOB,
    RETRAIN_LOST_CALLBACK,
    ROLLBACK_JOB,
    ROUTE_JOB,
    STATUS_JOB,
    AdminRequest,
    ChannelEvent,
    ClassifyRequest,
    RetrainRequest,
    RouteRequest,
    job_id_for,
)
from common.settings import Settings
from store import deliveries, limits, retraining
from store.queues import JOB_FAILURE_TTL_S, JOB_RESULT_TTL_S, SERIALIZER, classify_queue, train_queue
from store.retraining import TrainingProgress
from telemetry import metrics

log = logging.getLogger(__name__)

# A classify job that fails (Slack down, a page timing out) runs again after these pauses; the user is told
# it failed only after the last one. slack_sdk's own handlers already retried within each attempt.
CLASSIFY_RETRY_INTERVALS_S = [5, 15, 60]
ADMIN_JOB_TIMEOUT_S = 60
# A training job whose status is one of these no longer holds the training lock (a crashed worker's job).
_ENDED = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}


def counted(kind: str, enqueue: Callable[[], str | None]) -> str | None:
    """Run ``enqueue`` and count the request by its outcome (``newsbot_requests_total{kind, outcome}``).

    A job id is ``enqueued``, None a ``duplicate`` delivery, a NewsbotError (a training in hand) ``refused``;
    anything else (Redis unreachable) is ``queue_unavailable`` and an enqueue failure, and is raised again.
    """
    try:
        job_id = enqueue()
    except NewsbotError:
        metrics.REQUESTS.labels(kind=kind, outcome="refused").inc()
        raise
    except Exception:
        metrics.REQUESTS.labels(kind=kind, outcome="queue_unavailable").inc()
        metrics.ENQUEUE_FAILURES.labels(kind=kind).inc()
        raise
    metrics.REQUESTS.labels(kind=kind, outcome="enqueued" if job_id else "duplicate").inc()
    return job_id


Admission = Literal["admitted", "refused", "refused_first"]


class JobSubmitter:
    """Puts jobs on the queues. Each Slack delivery (event_id, …) enqueues at most one job."""

    def __init__(
        self, connection: Redis, classify_timeout_s: int | None = None, member_rate_per_minute: int | None = None
    ) -> None:
        """``classify_timeout_s``: a classify job's timeout (CLASSIFY_JOB_TIMEOUT_S); ``member_rate_per_minute``:
        the classifications one member may ask for per minute (MEMBER_RATE_PER_MINUTE, 0: no limit). None: the
        setting's default."""
        self.connection = connection
        if classify_timeout_s is None:
            classify_timeout_s = int(Settings.model_fields["classify_job_timeout_s"].default)
        self.classify_timeout_s = classify_timeout_s
        if member_rate_per_minute is None:
            member_rate_per_minute = int(Settings.model_fields["member_rate_per_minute"].default)
        self.member_rate_per_minute = member_rate_per_minute
        self.classify = classify_queue(connection)
        self.train = train_queue(connection)

    def admit(self, user: str | None, kind: str) -> Admission:
        """Count a member's request for a classification (a mention, DM, ``/classify-news`` or the shortcut)
        against MEMBER_RATE_PER_MINUTE, before anything is enqueued or answered.

        ``admitted`` within the limit (and always when there is no limit or no user); ``refused_first`` for the
        first request over it in the current window (the member is told, once), ``refused`` for the later ones
        (nothing is said). With Redis unreachable the request is admitted (what follows reports the outage).
        Admins are counted like everyone: the limit protects the queue from any one client.
        A refused request is counted as ``newsbot_requests_total{kind, outcome="rate_limited"}``.
        """
        if not user or self.member_rate_per_minute <= 0:
            return "admitted"
        try:
            count = limits.count_request(self.connection, user).count
        except RedisError as exc:  # the enqueue that follows meets the same outage and says so as it always did
            log.warning("member rate of %s not counted (%s): admitted", user, exc)
            return "admitted"
        if count <= self.member_rate_per_minute:
            return "admitted"
        metrics.REQUESTS.labels(kind=kind, outcome="rate_limited").inc()
        if count == self.member_rate_per_minute + 1:
            log.info("%s is over %d requests a minute: told once, refused until the window ends", user, count - 1)
            return "refused_first"
        return "refused"

    def claim(self, delivery_key: str) -> bool:
        """True the first time ``delivery_key`` (``newsbot:delivery:<key>``) is seen, False for a redelivery."""
        return deliveries.claim_delivery(self.connection, delivery_key)

    def release(self, delivery_key: str) -> None:
        """Forget the claim on ``delivery_key``: its redelivery is then handled as the first one."""
        deliveries.release_delivery(self.connection, delivery_key)

    @contextmanager
    def once(self, delivery_key: str) -> Iterator[bool]:
        """Claim ``delivery_key`` around a block that answers it: yields whether this is its first delivery; the
        block should do nothing when it is not. A block that raises releases the claim, so that Slack's
        redelivery of the same event (Bolt answered 500) can answer it.

        Redis down raises RedisError before the block runs."""
        first = self.claim(delivery_key)
        try:
            yield first
        except BaseException:
            if first:
                self.release(delivery_key)
            raise

    def _enqueue_once(
        self, queue: Queue, func: str, payload: dict[str, Any], delivery_key: str, kind: str, **options: Any
    ) -> str | None:
        """Enqueue ``func(payload)`` on ``queue`` unless this delivery was already enqueued; the job id or None."""
        if not self.claim(delivery_key):
            log.info("duplicate delivery %s ignored", delivery_key)
            return None
        job_id = job_id_for(kind, delivery_key)
        try:
            queue.enqueue_call(
                func,
                args=(payload,),
                job_id=job_id,
                unique=True,
                result_ttl=JOB_RESULT_TTL_S,
                failure_ttl=JOB_FAILURE_TTL_S,
                **options,
            )
        except DuplicateJobError:
            return None
        except Exception:
            # Not enqueued: forget the claim so that Slack's retry of this delivery can enqueue it.
            self.release(delivery_key)
            raise
        log.info("enqueued %s for delivery %s", job_id, delivery_key)
        return job_id

    def submit_classify(self, request: ClassifyRequest, delivery_key: str) -> str | None:
        """Enqueue a classify job; the job id, or None when this delivery was already enqueued.

        Counted by the request's source (mention, command, shortcut).
        """
        return counted(
            request.source,
            lambda: self._enqueue_once(
                self.classify,
                CLASSIFY_JOB,
                request.to_dict(),
                delivery_key,
                "classify",
                timeout=self.classify_timeout_s,
                retry=Retry(max=3, interval=CLASSIFY_RETRY_INTERVALS_S),
                description=f"classify {request.source} from {request.user} in {request.channel}",
            ),
        )

    def submit_admin(self, job: str, request: AdminRequest, delivery_key: str) -> str | None:
        """Enqueue ``/retrain status`` or ``rollback`` at the front of the classify queue (quick jobs)."""
        if job not in (STATUS_JOB, ROLLBACK_JOB):
            raise ValueError(f"not an admin job: {job}")
        return counted(
            "retrain",
            lambda: self._enqueue_once(
                self.classify,
                job,
                request.to_dict(),
                delivery_key,
                job.rsplit(".", 1)[-1],
                at_front=True,
                timeout=ADMIN_JOB_TIMEOUT_S,
                description=f"{job} by {request.user}",
            ),
        )

    def submit_route(self, request: RouteRequest, delivery_key: str) -> str | None:
        """Enqueue an admin's route at the front of the classify queue: the worker checks the desk channel."""
        return self._enqueue_once(
            self.classify,
            ROUTE_JOB,
            request.to_dict(),
            delivery_key,
            "route",
            at_front=True,
            timeout=ADMIN_JOB_TIMEOUT_S,
            description=f"route {request.label} to {request.desk} by {request.user}",
        )

    def submit_channel_event(self, event: ChannelEvent, delivery_key: str) -> str | None:
        """Enqueue a watched or desk channel's lifecycle event (``worker.lifecycle``), at the front: a watch or
        route of a channel that was archived, shared or left must stop before the next article is routed."""
        return self._enqueue_once(
            self.classify,
            CHANNEL_JOB,
            event.to_dict(),
            delivery_key,
            "channel",
            at_front=True,
            timeout=ADMIN_JOB_TIMEOUT_S,
            description=f"{event.event or event.change} in {event.channel}",
        )

    def running_training(self) -> str | None:
        """The id of the training job that is queued or running, or None (a stale lock is cleared)."""
        lock = retraining.training_lock(self.connection)
        if lock is None:
            return None
        try:
            status = Job.fetch(lock.job_id, connection=self.connection, serializer=SERIALIZER).get_status()
        except NoSuchJobError:
            status = None
        if status is not None and status not in _ENDED:
            return lock.job_id
        # The job ended without releasing the lock (its worker died): release it, unless it changed meanwhile.
        if not retraining.release_training_lock(self.connection, lock.job_id):
            return self.running_training()
        log.warning("released the training lock of ended job %s (%s)", lock.job_id, status)
        return None

    def cancel_training(self, user: str) -> tuple[str, bool] | None:
        """Ask the training in hand to stop, for ``/retrain cancel`` by ``user``.

        Returns (its job id, whether it had started), or None when no training is queued or running. A queued
        one is cancelled in RQ and its lock released at once; a running one stops at its next step (its worker
        reads the cancel, says so in the progress message and releases the lock).
        """
        job_id = self.running_training()
        if job_id is None:
            return None
        retraining.request_training_cancel(self.connection, retraining.TrainingCancel(job_id, user))
        try:
            job = Job.fetch(job_id, connection=self.connection, serializer=SERIALIZER)
        except NoSuchJobError:
            retraining.release_training_lock(self.connection, job_id)
            return job_id, False
        if job.get_status() != JobStatus.QUEUED:
            return job_id, True
        job.cancel()
        retraining.release_training_lock(self.connection, job_id)
        log.info("queued training %s cancelled by %s", job_id, user)
        return job_id, False

    def training_progress(self) -> TrainingProgress | None:
        return retraining.training_progress(self.connection)

    def submit_retrain(self, request: RetrainRequest, delivery_key: str, timeout_s: int) -> str | None:
        """Enqueue a training job on the ``train`` queue, the only one queued or running.

        Raises :class:`TrainingInProgressError` naming the training in hand when there is one.
        Returns None for a duplicate delivery.
        """
        return counted("retrain", lambda: self._submit_retrain(request, delivery_key, timeout_s))

    def _submit_retrain(self, request: RetrainRequest, delivery_key: str, timeout_s: int) -> str | None:
        job_id = job_id_for("retrain", delivery_key)
        running = self.running_training()
        if running is not None:
            raise TrainingInProgressError(running)
        while not retraining.acquire_training_lock(self.connection, job_id, timeout_s):
            held = retraining.training_lock(self.connection)
            if held is not None:  # else it was released meanwhile: try again
                raise TrainingInProgressError(held.job_id)
        if not self.claim(delivery_key):
            log.info("duplicate delivery %s ignored", delivery_key)
            retraining.release_training_lock(self.connection, job_id)
            return None
        try:
            self.train.enqueue_call(
                RETRAIN_JOB,
                args=(request.to_dict(),),
                job_id=job_id,
                unique=True,
                timeout=timeout_s,
                result_ttl=JOB_RESULT_TTL_S,
                failure_ttl=JOB_FAILURE_TTL_S,
                description=f"retrain by {request.user} in {request.channel}",
                on_failure=Callback(RETRAIN_LOST_CALLBACK),  # a killed worker's training is reported lost
            )
        except Exception:
            self.release(delivery_key)
            retraining.release_training_lock(self.connection, job_id)
            raise
        log.info("enqueued training %s for delivery %s", job_id, delivery_key)
        return job_id
