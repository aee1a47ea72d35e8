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
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import redis

from store.serving import ServingState, serving_states
from testkit.redis_server import free_port

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
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()
        return self.popen.returncode


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
    """Start the bot in HTTP mode on ``port`` (``args``, when given, replace its arguments and must serve that
    port) and wait until /healthz answers."""
    argv = list(args) if args is not None else ["-m", "bot", "--http", "--host", "127.0.0.1", "--port", str(port)]
    proc = Proc("bot", argv, env, workdir, prefix=prefix, cwd=cwd)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"bot exited early:\n{proc.log()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.stop()
    raise RuntimeError(f"bot did not become healthy:\n{proc.log()}")


@contextlib.contextmanager
def stopped_on_failure(*procs: Proc) -> Iterator[None]:
    """Stop ``procs`` if the ``with`` block raises (starting the next process failed), so none outlives its test."""
    try:
        yield
    except BaseException:
        for proc in procs:
            proc.stop()
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
    from rq import Worker

    worker_name = f"{name}-{os.getpid()}-{time.monotonic_ns()}"
    proc = Proc(name, ["-m", "worker", "--name", worker_name, *args], env, workdir, prefix=prefix, cwd=cwd)
    connection = redis.Redis.from_url(env["REDIS_URL"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"worker exited early:\n{proc.log()}")
        if any(w.name == worker_name for w in Worker.all(connection=connection)):
            return proc
        time.sleep(0.1)
    proc.stop()
    raise RuntimeError(f"worker did not register:\n{proc.log()}")


@contextlib.contextmanager
def running_stack(env: dict[str, str], workdir: Path) -> Iterator[tuple[str, list[Proc]]]:
    """A classify worker, a train worker and the bot (HTTP, free port), as compose runs them, for as long as the
    ``with`` block lasts; yields the bot's events URL and the processes (stopped at the end in any case)."""
    procs: list[Proc] = []
    try:
        procs.append(start_worker(env, workdir, name="classify-worker"))
        procs.append(start_worker(env, workdir, "--queues", "train", name="train-worker"))
        port = free_port()
        procs.append(start_bot(env, port, workdir))
        yield f"http://127.0.0.1:{port}/slack/events", procs
    finally:
        for proc in procs:
            proc.stop()


def seed_registry(models: Path, model: Path, version: str) -> Path:
    """A model registry at ``models`` whose current version ``version`` is a copy of the model folder ``model``."""
    shutil.copytree(model, models / version)
    (models / "current").write_text(version + "\n", encoding="utf-8")
    return models / version


def wait_serving(connection: redis.Redis, version: str, timeout: float = 60.0) -> ServingState:
    """Until every classify worker publishes that it serves ``version`` (hot reload); the first one's state."""
    deadline = time.monotonic() + timeout
    states: list[ServingState] = []
    while time.monotonic() < deadline:
        states = serving_states(connection)
        if states and all(s.version == version for s in states):
            return states[0]
        time.sleep(0.1)
    raise AssertionError(f"workers still serve {states}, not {version}")
