"""Redis connection and RQ queues, configured the same way in every process, and RQ's timings."""

from __future__ import annotations

from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from common.jobs import CLASSIFY_QUEUE, TRAIN_QUEUE
from common.settings import Settings

# Payloads are JSON, never pickle: a process must not unpickle what another wrote into Redis.
SERIALIZER = JSONSerializer

# RQ keeps a job's result (and its job hash) this long after it finished, and a failed job this long.
JOB_RESULT_TTL_S = 7 * 24 * 3600
JOB_FAILURE_TTL_S = 30 * 24 * 3600
# The worker's own TTL in RQ. RQ blocks on the queue for WORKER_TTL_S - 15 s between two looks at its
# maintenance clock (405 s by default), so a short TTL is what makes worker.batching.MAINTENANCE_INTERVAL_S real.
WORKER_TTL_S = 20
# A job's lease in RQ (its StartedJobRegistry entry and execution): renewed every
# worker.batching.HEARTBEAT_INTERVAL_S while its worker lives; once a dead worker's lease lapses, the next
# maintenance of a live worker hands the job back (BatchingWorker.get_heartbeat_ttl).
JOB_LEASE_S = 10


def redis_connection(settings: Settings) -> Redis:
    return Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=5,
        socket_timeout=None,
        health_check_interval=30,
        retry_on_timeout=True,
    )


def classify_queue(connection: Redis) -> Queue:
    return Queue(CLASSIFY_QUEUE, connection=connection, serializer=SERIALIZER)


def train_queue(connection: Redis) -> Queue:
    return Queue(TRAIN_QUEUE, connection=connection, serializer=SERIALIZER)


def queue_depths(connection: Redis) -> list[tuple[str, int]]:
    """Jobs waiting in each queue, for ``newsbot_queue_depth`` (read at scrape time)."""
    return [(queue.name, queue.count) for queue in (classify_queue(connection), train_queue(connection))]


def registry_counts(connection: Redis) -> list[tuple[str, str, int]]:
    """(queue, registry, jobs) of each queue's failed, started and scheduled registries, for ``newsbot_rq_jobs``."""
    counts = []
    for queue in (classify_queue(connection), train_queue(connection)):
        for name, registry in (
            ("failed", queue.failed_job_registry),
            ("started", queue.started_job_registry),
            ("scheduled", queue.scheduled_job_registry),
        ):
            counts.append((queue.name, name, registry.count))
    return counts


def redis_reachable(connection: Redis) -> bool:
    """Whether Redis answers a PING now (health checks)."""
    try:
        return bool(connection.ping())
    except Exception:  # noqa: BLE001 - any failure to answer is "unreachable"
        return False
