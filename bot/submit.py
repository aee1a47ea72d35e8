"""Enqueueing jobs for the workers, at most once per Slack delivery."""

from __future__ import annotations

import logging

from redis import Redis
from rq import Retry
from rq.exceptions import DuplicateJobError

from common.jobs import CLASSIFY_JOB, ClassifyRequest, job_id_for
from common.queues import classify_queue

log = logging.getLogger(__name__)

# How long a delivery id is remembered. Slack retries an event for about 5 minutes; keep it a day.
DEDUPE_TTL_S = 24 * 3600
CLASSIFY_JOB_TIMEOUT_S = 120
RESULT_TTL_S = 7 * 24 * 3600
FAILURE_TTL_S = 30 * 24 * 3600


class JobSubmitter:
    """Puts jobs on the queues. Each Slack delivery (event_id, …) enqueues at most one job."""

    def __init__(self, connection: Redis) -> None:
        self.connection = connection
        self.classify = classify_queue(connection)

    def _claim(self, delivery_key: str) -> bool:
        """True the first time ``delivery_key`` is seen (atomic SET NX with a TTL)."""
        return bool(self.connection.set(f"newsbot:delivery:{delivery_key}", "1", nx=True, ex=DEDUPE_TTL_S))

    def _release(self, delivery_key: str) -> None:
        self.connection.delete(f"newsbot:delivery:{delivery_key}")

    def submit_classify(self, request: ClassifyRequest, delivery_key: str) -> str | None:
        """Enqueue a classify job; the job id, or None when this delivery was already enqueued."""
        if not self._claim(delivery_key):
            log.info("duplicate delivery %s ignored", delivery_key)
            return None
        job_id = job_id_for("classify", delivery_key)
        try:
            self.classify.enqueue_call(
                CLASSIFY_JOB,
                args=(request.to_dict(),),
                job_id=job_id,
                unique=True,
                timeout=CLASSIFY_JOB_TIMEOUT_S,
                result_ttl=RESULT_TTL_S,
                failure_ttl=FAILURE_TTL_S,
                retry=Retry(max=2, interval=[5, 30]),
                description=f"classify {request.source} from {request.user} in {request.channel}",
            )
        except DuplicateJobError:
            return None
        except Exception:
            # Not enqueued: forget the claim so that Slack's retry of this delivery can enqueue it.
            self._release(delivery_key)
            raise
        log.info("enqueued %s for delivery %s", job_id, delivery_key)
        return job_id
