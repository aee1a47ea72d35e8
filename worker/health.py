"""The worker's health: liveness from its job loop's clock, readiness from what it needs to do its work.

Liveness (``/livez``; Kubernetes restarts a process that fails it) is progress, measured by :class:`LoopClock`,
which :class:`worker.batching.BatchingWorker` turns:

- ``job_loop``: before the loop starts (the model loading), passes; idle, the loop turned within
  ``IDLE_STALL_S`` (RQ's loop turns every WORKER_TTL_S - 15 s = 5 s while it waits for jobs, and at least every
  60 s while Redis is away: RQ's reconnect back-off); with a job in hand, the job is within its own timeout plus
  ``JOB_GRACE_S`` (RQ's death penalty should have ended it by then).
  A hung worker (a deadlock, a C call that never returns) fails it.
- ``heartbeat``: with a job in hand, the heartbeat thread tried to renew the job's lease within
  ``BEAT_STALL_S`` (it tries every HEARTBEAT_INTERVAL_S = 2 s; a stuck thread lets the lease lapse and
  another worker takes the job).

Both count attempts, not successes: Redis being away is not the worker's fault and never restarts it.

Readiness (``/readyz``, and ``/healthz`` which compose's healthchecks ask): ``redis`` (PING answered),
``model_loaded`` (a classify worker; a train worker loads none), ``slack_token`` (auth.test did not call the
token dead, :class:`bot.slack_client.SlackTokenCheck`). The details name the version served, the queues, the
worker's name in RQ and the clock's figures.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from redis import Redis

from store.queues import redis_reachable
from telemetry.endpoint import Health, HealthProbe

if TYPE_CHECKING:
    from worker.classifier import ModelService

IDLE_STALL_S = 120.0
JOB_GRACE_S = 60.0
BEAT_STALL_S = 30.0


class LoopClock:
    """When the job loop last turned, the job in hand and its deadline, and the heartbeat thread's last try.

    ``now`` is the clock read (``time.monotonic``); tests give another to simulate a stuck loop without waiting.
    """

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._lock = threading.Lock()
        self.turned_at: float | None = None  # None until the loop starts (the model may take minutes to load)
        self.beat_at = now()
        self.job_since: float | None = None
        self.job_deadline: float | None = None  # None with a job in hand: no timeout (RQ's -1)

    def turn(self) -> None:
        """The loop turned: it is waiting for jobs, or just finished one."""
        with self._lock:
            self.turned_at = self._now()
            self.job_since = self.job_deadline = None

    def job_started(self, timeout_s: float | None) -> None:
        """A job (or the next step of a batch) started; it may take ``timeout_s`` (None or negative: no limit)."""
        with self._lock:
            now = self._now()
            self.turned_at = self.beat_at = now
            if self.job_since is None:
                self.job_since = now
            self.job_deadline = None if timeout_s is None or timeout_s < 0 else now + timeout_s + JOB_GRACE_S

    def beat(self) -> None:
        """The heartbeat thread is about to renew the leases."""
        with self._lock:
            self.beat_at = self._now()

    @property
    def busy(self) -> bool:
        return self.job_since is not None

    def live(self) -> dict[str, bool]:
        with self._lock:
            now = self._now()
            if self.job_since is None:
                idle_ok = self.turned_at is None or now - self.turned_at <= IDLE_STALL_S
                return {"job_loop": idle_ok, "heartbeat": True}
            in_time = self.job_deadline is None or now <= self.job_deadline
            return {"job_loop": in_time, "heartbeat": now - self.beat_at <= BEAT_STALL_S}

    def details(self) -> dict[str, Any]:
        with self._lock:
            now = self._now()
            return {
                "loop_turned_s_ago": None if self.turned_at is None else round(now - self.turned_at, 1),
                "job_in_hand_s": None if self.job_since is None else round(now - self.job_since, 1),
            }


def worker_probe(
    connection: Redis,
    models: ModelService,
    queues: Sequence[str],
    worker_name: str,
    *,
    serves_model: bool,
    clock: LoopClock,
    token_ok: Callable[[], bool] | None = None,
) -> HealthProbe:
    """A probe for :class:`~telemetry.endpoint.OpsServer` (see the module docstring)."""

    def probe() -> Health:
        checks = {"redis": redis_reachable(connection)}
        if serves_model:
            checks["model_loaded"] = models.version is not None
        if token_ok is not None:
            checks["slack_token"] = token_ok()
        details = {"worker": worker_name, "queues": list(queues), "model_version": models.version, **clock.details()}
        return Health(checks=checks, details=details, live=clock.live())

    return probe
