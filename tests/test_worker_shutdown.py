"""A worker asked to stop always exits: it neither starts its scheduler again nor waits forever on one that
ignores SIGTERM (a scheduler forked from a busy process may not have installed its own handler yet)."""

from __future__ import annotations

import multiprocessing
import signal
import time
from datetime import UTC, datetime
from multiprocessing.synchronize import Event as EventType

import pytest
import redis
from rq.scheduler import RQScheduler

from store.queues import SERIALIZER, train_queue
from worker import batching
from worker.batching import BatchingWorker


def deaf_to_sigterm(ready: EventType) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ready.set()
    time.sleep(120)  # a scheduler at work, until it is killed


def stops_on_sigterm(ready: EventType) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not whatever handler the test process had when it forked
    ready.set()
    time.sleep(120)  # a scheduler at work, until SIGTERM ends it


def worker_with_scheduler(conn: redis.Redis) -> BatchingWorker:
    worker = BatchingWorker([train_queue(conn)], connection=conn, serializer=SERIALIZER, name="w-shutdown")
    worker.scheduler = RQScheduler([q.name for q in worker.queues], connection=conn)
    return worker


def test_a_scheduler_that_ignores_sigterm_is_killed_after_a_bound(
    redis_conn: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batching, "SCHEDULER_STOP_S", 1.0, raising=False)
    worker = worker_with_scheduler(redis_conn)
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    process = context.Process(target=deaf_to_sigterm, args=(ready,), daemon=True)
    process.start()
    worker.scheduler._process = process  # type: ignore[union-attr]
    assert ready.wait(10)  # it has installed its SIG_IGN
    started = time.monotonic()
    worker.stop_scheduler()
    took = time.monotonic() - started
    assert not process.is_alive()
    assert process.exitcode == -signal.SIGKILL
    assert 0.9 <= took < 4, took


def test_a_scheduler_that_stops_on_sigterm_is_not_killed(redis_conn: redis.Redis) -> None:
    worker = worker_with_scheduler(redis_conn)
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    process = context.Process(target=stops_on_sigterm, args=(ready,), daemon=True)
    process.start()
    worker.scheduler._process = process  # type: ignore[union-attr]
    assert ready.wait(10)  # it has reset its SIGTERM handler
    worker.stop_scheduler()
    assert process.exitcode == -signal.SIGTERM


def test_maintenance_of_a_worker_asked_to_stop_cleans_but_starts_no_scheduler(redis_conn: redis.Redis) -> None:
    worker = worker_with_scheduler(redis_conn)
    worker.last_cleaned_at = datetime.now(UTC)  # not the first maintenance: RQ would restart its scheduler
    started: list[bool] = []
    worker.scheduler.acquire_locks = lambda auto_start=False: started.append(auto_start)  # type: ignore[method-assign,union-attr]
    cleaned: list[bool] = []
    worker.clean_registries = lambda: cleaned.append(True)  # type: ignore[method-assign]
    worker.run_maintenance_tasks()
    assert started == [True] and cleaned == [True]  # running: RQ starts its dead scheduler again

    worker._stop_requested = True
    worker.run_maintenance_tasks()
    assert started == [True] and cleaned == [True, True]  # stopping: registries cleaned, no new scheduler
