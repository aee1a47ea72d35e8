"""Starting the product's real processes (``python -m bot``, ``python -m worker``) for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis
from rq.registry import StartedJobRegistry

from store.queues import classify_queue
from store.serving import ServingState, serving_states
from testkit.redis_server import free_port
from testkit.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parents[1]


def product_env(**overrides: str) -> dict[str, str]:
    """The environment of a product process: the test's settings only, never the developer's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REDIS_", "MODEL_", "ADMIN_", "FETCH_"))}
    env.update(
        {
            "PYTHONPATH": str(REPO_ROOT),
            "PYTHONUNBUFFERED": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_VERBOSITY": "error",
            "TOKENIZERS_PARALLELISM": "false",
            "SLACK_BOT_TOKEN": "xoxb-test-token",
            "SLACK_SIGNING_SECRET": "test-signing-secret",
            # No ops endpoint unless a test asks for one (--ops-port, OPS_PORT): processes of parallel tests
            # must not compete for the default port.
            "OPS_PORT": "0",
        }
    )
    env.update(overrides)
    return env


def socket_mode_env(**overrides: str) -> dict[str, str]:
    """A product environment for Socket Mode: an app-level token and no signing secret (nothing comes over HTTP)."""
    env = product_env(**{"SLACK_APP_TOKEN": "xapp-1-A0001-test", **overrides})
    env.pop("SLACK_SIGNING_SECRET")
    return env


class Proc:
    """``python args`` with its output in ``workdir/<name>.log``; it runs in ``cwd`` (default: ``workdir``),
    after ``prefix`` when given (e.g. setpriv, to run it as another user)."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        workdir: Path,
        *,
        prefix: Sequence[str] = (),
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            [*prefix, sys.executable, *args], env=env, cwd=cwd or workdir, stdout=self._log, stderr=subprocess.STDOUT
        )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        """Its exit status once it has exited; AssertionError with its log if it is still running after ``timeout``."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still runs {timeout:g}s on:\n{self.log()[-6000:]}") from None

    def stop(self, timeout: float = 20.0) -> int | None:
        self.signal(signal.SIGTERM)
        return self.reap(timeout)

    def reap(self, timeout: float = 20.0) -> int | None:
        """Its exit status once it has exited (killed after ``timeout``); its log closed."""
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)
        self._log.close()
        return self.popen.returncode


def stop_all(procs: Sequence[Proc], timeout: float = 20.0) -> None:
    """SIGTERM to every one of ``procs`` at once, then each reaped (see :meth:`Proc.reap`): their graceful
    shutdowns (a worker's takes a second or two) overlap instead of adding up. Each gets one SIGTERM only (a second
    would ask an RQ worker for a cold shutdown)."""
    for proc in procs:
        proc.signal(signal.SIGTERM)
    for proc in procs:
        proc.reap(timeout)


@dataclass(frozen=True)
class Starting:
    """A process just launched, and how to tell that it is ready (:func:`wait_started`)."""

    proc: Proc
    ready: Callable[[], bool]
    what: str


def wait_started(*starting: Starting, timeout: float = 120.0) -> list[Proc]:
    """The processes, once every one is ready: launched together, their start-ups (imports, model loads) overlap.
    All are stopped if one is not ready within ``timeout`` (or exits first)."""
    procs = [each.proc for each in starting]
    with stopped_on_failure(*procs):
        for each in starting:
            wait_until(each.ready, each.what, timeout, details=each.proc.log)
    return procs


def launch_bot(
    env: dict[str, str],
    port: int,
    workdir: Path,
    *,
    args: Sequence[str] | None = None,
    prefix: Sequence[str] = (),
    cwd: Path | None = None,
) -> Starting:
    """The bot in HTTP mode on ``port`` (``args``, when given, replace its arguments and must serve that port),
    ready once /healthz answers."""
    argv = list(args) if args is not None else ["-m", "bot", "--http", "--host", "127.0.0.1", "--port", str(port)]
    proc = Proc("bot", argv, env, workdir, prefix=prefix, cwd=cwd)

    def healthy() -> bool:
        if not proc.alive():
            raise RuntimeError(f"bot exited early:\n{proc.log()}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    return Starting(proc, healthy, "the bot to become healthy")


def start_bot(
    env: dict[str, str],
    port: int,
    workdir: Path,
    timeout: float = 60.0,
    *,
    args: Sequence[str] | None = None,
    prefix: Sequence[str] = (),
    cwd: Path | None = None,
) -> Proc:
    """Start the bot in HTTP mode on ``port`` (see :func:`launch_bot`) and wait until /healthz answers."""
    (proc,) = wait_started(launch_bot(env, port, workdir, args=args, prefix=prefix, cwd=cwd), timeout=timeout)
    return proc


@contextlib.contextmanager
def stopped_on_failure(*procs: Proc) -> Iterator[None]:
    """Stop ``procs`` if the ``with`` block raises (starting the next process failed), so none outlives its test."""
    try:
        yield
    except BaseException:
        stop_all(procs)
        raise


def start_socket_mode_bot(env: dict[str, str], workdir: Path, connected: threading.Event) -> Proc:
    """``python -m bot`` in Socket Mode, once it has opened its WebSocket (``connected``, set by the fake server)."""
    proc = Proc("bot", ["-m", "bot"], env, workdir)
    if not connected.wait(60):
        proc.stop()
        raise RuntimeError(f"the bot did not connect over Socket Mode:\n{proc.log()}")
    return proc


@contextlib.contextmanager
def running_bot(env: dict[str, str], workdir: Path) -> Iterator[str]:
    """The bot in HTTP mode on a free port for as long as the ``with`` block lasts; yields its events URL."""
    port = free_port()
    bot = start_bot(env, port, workdir)
    try:
        yield f"http://127.0.0.1:{port}/slack/events"
    finally:
        bot.stop()


def launch_worker(
    env: dict[str, str],
    workdir: Path,
    *args: str,
    name: str = "worker",
    prefix: Sequence[str] = (),
    cwd: Path | None = None,
) -> Starting:
    """A worker, ready once it has registered with RQ (after its model is loaded)."""
    from rq import Worker

    worker_name = f"{name}-{os.getpid()}-{time.monotonic_ns()}"
    proc = Proc(name, ["-m", "worker", "--name", worker_name, *args], env, workdir, prefix=prefix, cwd=cwd)
    connection = redis.Redis.from_url(env["REDIS_URL"])

    def registered() -> bool:
        if not proc.alive():
            raise RuntimeError(f"worker exited early:\n{proc.log()}")
        return any(w.name == worker_name for w in Worker.all(connection=connection))

    return Starting(proc, registered, f"worker {name} to register with RQ")


def start_worker(
    env: dict[str, str],
    workdir: Path,
    *args: str,
    name: str = "worker",
    timeout: float = 120.0,
    prefix: Sequence[str] = (),
    cwd: Path | None = None,
) -> Proc:
    """Start a worker and wait until it has registered with RQ (after its model is loaded)."""
    (proc,) = wait_started(launch_worker(env, workdir, *args, name=name, prefix=prefix, cwd=cwd), timeout=timeout)
    return proc


def start_workers(env: dict[str, str], workdir: Path, *names: str, timeout: float = 120.0) -> list[Proc]:
    """Classify workers named ``names`` (each logging in ``workdir / name``), started together; once all have
    registered with RQ."""
    return wait_started(*(launch_worker(env, workdir / n, name=n) for n in names), timeout=timeout)


@contextlib.contextmanager
def running_stack(env: dict[str, str], workdir: Path) -> Iterator[tuple[str, list[Proc]]]:
    """A classify worker, a train worker and the bot (HTTP, free port), as compose runs them, started together,
    for as long as the ``with`` block lasts; yields the bot's events URL and the processes (stopped at the end
    in any case)."""
    port = free_port()
    procs = wait_started(
        launch_worker(env, workdir, name="classify-worker"),
        launch_worker(env, workdir, "--queues", "train", name="train-worker"),
        launch_bot(env, port, workdir),
    )
    try:
        yield f"http://127.0.0.1:{port}/slack/events", procs
    finally:
        stop_all(procs)


def seed_registry(models: Path, model: Path, version: str) -> Path:
    """A model registry at ``models`` whose current version ``version`` is a copy of the model folder ``model``."""
    shutil.copytree(model, models / version)
    (models / "current").write_text(version + "\n", encoding="utf-8")
    return models / version


def wait_serving(connection: redis.Redis, version: str, timeout: float = 60.0) -> ServingState:
    """Until every classify worker publishes that it serves ``version`` (hot reload); the first one's state."""
    states: list[ServingState] = []

    def serving() -> bool:
        nonlocal states
        states = serving_states(connection)
        return bool(states) and all(s.version == version for s in states)

    wait_until(serving, f"every worker to serve {version}", timeout, details=lambda: f"they serve {states}")
    return states[0]


def classify_settled(connection: redis.Redis) -> bool:
    """Whether no classify job is waiting or in hand: nothing left that could still post a reply."""
    queue = classify_queue(connection)
    return queue.count == 0 and StartedJobRegistry(queue=queue).count == 0
