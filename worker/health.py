"""The worker's ``/healthz`` probe: alive, Redis reachable, and (for a classify worker) a model loaded.

A train worker loads no model (it trains them), so its probe has no ``model_loaded`` check. The details
name the version served, the queues and the worker's name in RQ.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from redis import Redis

from store.queues import redis_reachable
from telemetry.endpoint import Health, HealthProbe
from worker.classifier import ModelService


def worker_probe(
    connection: Redis,
    models: ModelService,
    queues: Sequence[str],
    worker_name: str,
    *,
    serves_model: bool,
    main_thread: threading.Thread | None = None,
) -> HealthProbe:
    """A probe for :class:`~telemetry.endpoint.OpsServer`: ``alive`` is the worker's main loop's thread running."""
    main = main_thread or threading.main_thread()

    def probe() -> Health:
        checks = {"alive": main.is_alive(), "redis": redis_reachable(connection)}
        if serves_model:
            checks["model_loaded"] = models.version is not None
        details = {"worker": worker_name, "queues": list(queues), "model_version": models.version}
        return Health(checks=checks, details=details)

    return probe
