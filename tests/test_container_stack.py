"""The whole compose stack (docker-compose.yml + docker-compose.http.yml) under container conditions, without Docker.

Every service's command runs as compose runs it: as uid 10001 (setpriv, like the images' USER), in a root-owned,
read-only copy of its image's /app (the folders its Dockerfile target COPYs; cwd and PYTHONPATH), with the image's
ENV, then .env (.env.example with the Slack values filled in), then the service's environment from compose; every
mount point is a temporary folder owned by 10001, as a fresh named volume is, and HOME (/home/newsbot, which
useradd creates) one too. Stand-ins replace only the network boundary: a private redis-server for the `redis`
service, the fake Slack Web API over HTTP for Slack (SLACK_API_URL), a small synthetic corpus archive put in the
data volume as docs/deploy.md's offline recipe does (TRAIN_DATA=/data/corpus/ldcc-20140209.tar.gz), and the bot's
published port is a free one.

In compose's order: the HTTP-mode `bot` starts at once and takes a signed mention while `bootstrap` makes the first
(linear) model; `worker` and `train-worker` start after it, and the mention is answered in its thread. An admin's
signed `/retrain type=linear` runs to the end and registers a new version tested on the same split. Then nothing
was written into either /app or HOME, and everything written in the volumes belongs to uid 10001.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus

from common.labels import SLUGS
from newsmodel import registry
from store.queues import SERIALIZER
from testkit.fake_corpus import build_archive
from testkit.fake_slack import FakeSlack
from testkit.fake_socket_mode import FakeSocketMode
from testkit.processes import Proc, launch_worker, start_bot, wait_started
from testkit.redis_server import RedisServer, free_port
from testkit.signing import event_body, mention_event, signed_json_headers
from testkit.slack_requests import SECRET, slash_command
from tests.compose_files import (
    BASE,
    HTTP,
    UID,
    container_environment,
    env_file,
    image_build,
    image_user,
    load_compose,
    owned_folder,
    read_only_app,
    tree,
    volume_folders,
    walk,
)

pytestmark = pytest.mark.slow

ADMIN = "UADMIN"
CHANNEL = "CNEWS"
MENTION_TS = "1700000000.000100"


def _module_command(service: dict[str, Any], module: str) -> list[str]:
    """The service's command, checked to be ``python -m <module> …``; what follows ``python``."""
    command = list(service["command"])
    assert command[:3] == ["python", "-m", module], command
    return command[1:]


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in reversed(started):
        proc.stop()


class Containers:
    """The services of the merged compose ``files`` under container conditions (see the module's docstring)."""

    def __init__(self, root: Path, files: tuple[str, ...], redis_url: str, dotenv: dict[str, str]) -> None:
        self.as_user = image_user()
        self.model = load_compose(*files)
        self.services: dict[str, Any] = self.model["services"]
        self.root = root
        self.apps = {target: root / f"app-{target}" for target in ("bot", "worker")}
        self.app_files = {target: read_only_app(target, app) for target, app in self.apps.items()}
        self.home = owned_folder(root / "home")
        self.logs = root / "logs"
        self.volumes = root / "volumes"
        self.redis_url = redis_url
        # .env: the example with the Slack values filled in (README: Configuration); compose's environment wins
        # over it (its REDIS_URL and MODEL_DIR are for scripts/run).
        self.dotenv = {**env_file(".env.example"), "SLACK_BOT_TOKEN": "xoxb-test-token", **dotenv}

    def env(self, name: str) -> tuple[dict[str, str], Path]:
        """The environment of service ``name`` and its /app."""
        service = self.services[name]
        target = image_build(self.services, name)["target"]
        folders = volume_folders(self.model, service, self.volumes)
        app = self.apps[target]
        env = container_environment(service, target, {"/app": app, **folders}, self.home, env_file=self.dotenv)
        assert urlparse(env["REDIS_URL"]).hostname == "redis"  # the `redis` service, here the private server
        env["REDIS_URL"] = self.redis_url
        if env.get("OPS_PORT", "0") != "0":
            # Each container has its own network namespace, where every process may take port 9100; here they
            # all share this machine's: each gets a free port instead.
            env["OPS_PORT"] = str(free_port())
        return env, app

    def assert_written_only_to_the_volumes(self) -> None:
        """Nothing in either /app or HOME; everything in the volumes owned by uid 10001."""
        for target, app in self.apps.items():
            assert tree(app) == self.app_files[target], f"something was written into the {target} image's /app"
        assert tree(self.home) == ["."], f"written outside the volumes, into HOME: {tree(self.home)}"
        if self.as_user and self.volumes.exists():
            foreign = [p for p in walk(self.volumes) if p.stat().st_uid != UID]
            assert foreign == [self.volumes], foreign


def test_the_compose_stack_answers_a_mention_and_retrains_writing_only_to_its_volumes(
    container_root: Path,
    redis_server: RedisServer,
    redis_conn: redis.Redis,
    fake_slack: FakeSlack,
    procs: list[Proc],
) -> None:
    # The corpus is a local copy in the data volume, owned by 10001, as the runbook's offline recipe puts it.
    dotenv = {
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "ADMIN_USER_IDS": ADMIN,
        "TRAIN_DATA": "/data/corpus/ldcc-20140209.tar.gz",
        "HF_HUB_OFFLINE": "1",  # nothing is downloaded: the corpus is local and the linear model needs no base
    }
    stack = Containers(container_root, (BASE, HTTP), redis_server.url, dotenv)
    as_user, services, logs = stack.as_user, stack.services, stack.logs

    # The bot (HTTP mode; its published port is a free one here) starts at once, as compose starts it.
    env, app = stack.env("bot")
    port = free_port()
    bot_args = _module_command(services["bot"], "bot")
    assert "--http" in bot_args
    bot_args[bot_args.index("--port") + 1] = str(port)
    procs.append(start_bot(env, port, logs, args=bot_args, prefix=as_user, cwd=app))
    events = f"http://127.0.0.1:{port}/slack/events"
    healthcheck = list(services["bot"]["healthcheck"]["test"])  # compose's own check, on the port used here
    assert healthcheck[:2] == ["CMD", "python"] and ":3000/" in healthcheck[-1]
    healthy = [*as_user, sys.executable, *healthcheck[2:-1], healthcheck[-1].replace(":3000/", f":{port}/")]
    assert subprocess.run(healthy, cwd=app, env=env, capture_output=True, timeout=30).returncode == 0

    # (3, first half) A signed mention before there is any model or worker: it waits in Redis.
    body = event_body(
        mention_event(MENTION_TS, "日本代表は試合終了間際のゴールで勝利した。", channel="C42", user="U1"), "Ev1"
    )
    assert httpx.post(events, content=body, headers=signed_json_headers(body, SECRET), timeout=10).status_code == 200

    # (1) bootstrap: the first model, linear, made current, from the corpus copy in the data volume.
    env, app = stack.env("bootstrap")
    models, data_cache = Path(env["MODEL_DIR"]), Path(env["DATA_CACHE_DIR"])
    archive = Path(env["TRAIN_DATA"])
    assert archive.parent == data_cache
    build_archive(archive, per_class=12)
    if os.geteuid() == 0:  # `chown -R 10001:10001 /data`, as the recipe does
        for path in walk(data_cache):
            os.chown(path, UID, UID)
    bootstrapped = subprocess.run(
        [*as_user, sys.executable, *_module_command(services["bootstrap"], "training")],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert bootstrapped.returncode == 0, bootstrapped.stderr[-3000:]
    first = json.loads(bootstrapped.stdout.strip().splitlines()[-1])
    assert first["trained"] is True and first["promoted"] is True
    assert [(v.version, v.model_type) for v in registry.list_versions(models)] == [(first["version"], "linear")]
    split_files = sorted(data_cache.glob("split-seed*.jsonl"))
    assert split_files, "the fixed split file is kept in the data volume"

    # (2) worker and train-worker start once bootstrap has exited 0.
    env, app = stack.env("worker")
    worker_args = _module_command(services["worker"], "worker")[2:]
    worker = launch_worker(env, logs, *worker_args, name="worker", prefix=as_user, cwd=app)
    procs.append(worker.proc)
    env, app = stack.env("train-worker")
    train_args = _module_command(services["train-worker"], "worker")[2:]
    assert train_args == ["--queues", "train"]
    train_worker = launch_worker(env, logs, *train_args, name="train-worker", prefix=as_user, cwd=app)
    procs.append(train_worker.proc)
    wait_started(worker, train_worker)  # as compose starts them: together

    # (3) The waiting mention is answered in its thread by the bootstrapped model.
    (reply,) = fake_slack.wait_for_calls("chat.postMessage", 1, timeout=90)
    assert (reply.params["channel"], reply.params["thread_ts"]) == ("C42", MENTION_TS)
    assert len([slug for slug in SLUGS if f"`{slug}`" in reply.params["text"]]) == 1, reply.params["text"]

    # (4) An admin's /retrain type=linear runs to the end; the progress message ends with the result.
    answer = slash_command(
        events, "/retrain", "type=linear", user=ADMIN, channel=CHANNEL, response_url=fake_slack.response_url("r")
    )
    assert answer.status_code == 200
    fake_slack.wait_for(lambda f: any(c.params.get("_name") == "r" for c in f.calls_to("response_url")), 30)
    (queued,) = [c.params for c in fake_slack.calls_to("response_url") if c.params.get("_name") == "r"]
    assert "Training queued" in queued["text"], queued
    (job_key,) = redis_conn.keys("rq:job:retrain-*")
    job = Job.fetch(os.fsdecode(job_key).removeprefix("rq:job:"), connection=redis_conn, serializer=SERIALIZER)
    fake_slack.wait_for(lambda f: job.get_status() in (JobStatus.FINISHED, JobStatus.FAILED), timeout=150)
    assert job.get_status() == JobStatus.FINISHED, "\n".join(p.log()[-3000:] for p in procs)
    result: dict[str, Any] = job.return_value() or {}
    new_version = result["version"]
    (progress,) = [c for c in fake_slack.calls_to("chat.postMessage") if c.params.get("channel") == CHANNEL]
    fake_slack.wait_for(
        lambda f: any("Done" in c.params.get("text", "") for c in f.calls_to("chat.update")), timeout=30
    )
    updates = [c for c in fake_slack.calls_to("chat.update") if c.params.get("channel") == CHANNEL]
    final = updates[-1].params["text"]
    assert "Done" in final and f"`{new_version}`" in final, final
    assert "macro-F1" in final and first["version"] in final
    assert "Retraining" in progress.params["text"] and len({c.params["ts"] for c in updates}) == 1

    # A new version in the models volume, linear, tested on the same articles (the split file of the data
    # volume); a linear run writes no run folder.
    versions = {v.version: v for v in registry.list_versions(models)}
    assert set(versions) == {first["version"], new_version}
    assert versions[new_version].model_type == "linear"
    assert registry.current_version(models) == (new_version if result["promoted"] else first["version"])
    assert sorted(data_cache.glob("split-seed*.jsonl")) == split_files
    fingerprints = {(v.metrics or {}).get("test_fingerprint") for v in versions.values()}
    assert len(fingerprints) == 1 and None not in fingerprints, fingerprints
    assert tree(Path(env["TRAIN_RUN_DIR"])) == ["."]

    # (5) Nothing written into either /app or HOME; everything in the volumes belongs to uid 10001.
    for proc in reversed(procs):
        proc.stop()
    stack.assert_written_only_to_the_volumes()
    assert list(stack.volumes.joinpath("data").rglob("fontlist-*.json")), "matplotlib's cache (MPLCONFIGDIR) is in data"


def test_the_default_socket_mode_bot_connects_and_enqueues_a_mention(
    container_root: Path,
    redis_server: RedisServer,
    redis_conn: redis.Redis,
    fake_slack: FakeSlack,
    procs: list[Proc],
) -> None:
    """docker-compose.yml alone: the bot's command is Socket Mode, with .env's SLACK_APP_TOKEN (no signing secret,
    no port); it connects and acks a mention, which waits in Redis for a worker."""
    socket_mode = FakeSocketMode().start()
    fake_slack.socket_mode_url = socket_mode.url
    try:
        dotenv = {
            "SLACK_APP_TOKEN": "xapp-1-A0001-test",
            "SLACK_API_URL": fake_slack.api_url,
            "OPS_PORT": str(free_port()),  # each container has its own network; here they share one
        }
        stack = Containers(container_root, (BASE,), redis_server.url, dotenv)
        env, app = stack.env("bot")
        assert "SLACK_SIGNING_SECRET" not in env or not env["SLACK_SIGNING_SECRET"]
        procs.append(
            Proc("bot", _module_command(stack.services["bot"], "bot"), env, stack.logs, prefix=stack.as_user, cwd=app)
        )
        assert socket_mode.connected.wait(60), procs[0].log()
        event = mention_event(MENTION_TS, "横綱が千秋楽で優勝を決めた。", channel="CSOCK", user="U7")
        socket_mode.send("events_api", "env-1", json.loads(event_body(event, "EvSock1")))
        socket_mode.wait_ack("env-1", timeout=30)
        queued = Queue("classify", connection=redis_conn, serializer=SERIALIZER).jobs
        assert [job.args[0]["channel"] for job in queued] == ["CSOCK"]
        procs[0].signal(signal.SIGTERM)
        assert procs[0].wait_exit(20) == 0, procs[0].log()
    finally:
        fake_slack.socket_mode_url = None
        socket_mode.stop()
    stack.assert_written_only_to_the_volumes()
