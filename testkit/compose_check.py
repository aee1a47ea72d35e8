"""The compose check: build the images and drive the whole stack on a real Docker engine (scripts/compose-check).

It runs the compose files as a user runs them on a CPU host with the HTTP Events API and the ``ops`` profile
(docker-compose.yml + docker-compose.cpu.yml + docker-compose.http.yml), from a copy of this checkout's files (what
git tracks or does not ignore: a clean clone's content) with a ``.env`` made from ``.env.example``, under its own
project name, from empty volumes. Only Slack is a stand-in: testkit's fake Slack Web API, on this host, which the
containers reach at the compose network's gateway. With ``--override`` (the default where scripts/compose-setup
made the engine) ops/compose-check/override.yml is added: builds on the host network and a fixed subnet.

Steps, each timed; the first failure stops the check with the log tail of the service concerned (exit status 1):
build, the offline corpus recipe of docs/deploy.md, ``up`` (bootstrap exits 0; bot, worker, train-worker
healthy), a signed mention answered in its thread, an admin's ``/retrain type=linear`` registered, promoted and
hot-reloaded by the worker, the ``ops`` profile (rq-dashboard lists the queues, TensorBoard answers, Prometheus
has every target up), ``docker diff`` of every newsbot container (nothing outside the volumes), the runbook's
``down`` (no container left) and ``up`` again (the model kept, bootstrap does nothing).

    python -m testkit.compose_check [--keep] [--no-override]      (scripts/compose-check)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from testkit.fake_corpus import build_archive
from testkit.fake_slack import FakeSlack
from testkit.signing import event_body, form_body, mention_event, signed_json_headers, slack_signature_headers

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "newsbot-check"
FILES = ("docker-compose.yml", "docker-compose.cpu.yml", "docker-compose.http.yml")
OVERRIDE = "ops/compose-check/override.yml"
NEWSBOT_SERVICES = ("bot", "bootstrap", "worker", "train-worker", "rq-dashboard", "tensorboard")
HEALTHY = ("bot", "worker", "train-worker")
SECRET = "compose-check-signing-secret"
ADMIN = "UADMIN"
MENTION_TS = "1700000000.000100"
MIN_COMPOSE = (2, 24, 4)
# The offline corpus recipe of docs/deploy.md ("The first model"), run word for word in the stack's folder.
CORPUS = "ldcc-20140209.tar.gz"
T = TypeVar("T")
# Compose's terminal control sequences (it clears each line with ESC[2K even with --no-color).
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class CheckFailed(Exception):
    def __init__(self, message: str, service: str | None = None) -> None:
        super().__init__(message)
        self.service = service


def compose_version() -> tuple[int, int, int] | None:
    try:
        out = subprocess.run(
            ["docker", "compose", "version", "--short"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.match(r"v?(\d+)\.(\d+)\.(\d+)", out.strip())
    return (int(found[1]), int(found[2]), int(found[3])) if found else None


def engine_unavailable() -> str | None:
    """Why the check cannot run here (None: a Docker engine answers and Compose is recent enough)."""
    if shutil.which("docker") is None:
        return "no docker client on PATH (scripts/compose-setup installs one)"
    try:
        info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "the Docker engine does not answer (docker info timed out)"
    if info.returncode != 0:
        return "no Docker engine answers (docker info failed; scripts/compose-setup starts one)"
    version = compose_version()
    if version is None or version < MIN_COMPOSE:
        return f"Docker Compose >= {'.'.join(map(str, MIN_COMPOSE))} is needed, found {version}"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(what: str, check: Callable[[], T | None], timeout: float, service: str | None = None, every: float = 1.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout:.0f}s waiting for {what}", service)
        time.sleep(every)


def http_get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def http_post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


class Stack:
    def __init__(self, work: Path, override: bool) -> None:
        self.work = work
        self.folder = work / "stack"
        self.files = [*FILES, *([OVERRIDE] if override else [])]
        self.ports = {
            name: free_port() for name in ("PORT", "RQ_DASHBOARD_PORT", "TENSORBOARD_PORT", "PROMETHEUS_PORT")
        }
        self.gateway = os.environ.get("CHECK_GATEWAY", "172.30.99.1") if override else None
        self.figures: list[tuple[str, float]] = []

    # -- docker ---------------------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        return {**os.environ, **{k: str(v) for k, v in self.ports.items()}, "COMPOSE_PROJECT_NAME": PROJECT}

    def compose_args(self, *args: str, profile: bool = True) -> list[str]:
        files = [arg for name in self.files for arg in ("-f", name)]
        return ["docker", "compose", "-p", PROJECT, *files, *(["--profile", "ops"] if profile else []), *args]

    def run(self, argv: list[str], timeout: float = 1800, check: bool = True, service: str | None = None) -> str:
        done = subprocess.run(
            argv, cwd=self.folder, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
            raise CheckFailed(f"{' '.join(argv[:8])}… exited {done.returncode}:\n{tail}", service)
        return done.stdout

    def compose(self, *args: str, timeout: float = 1800, check: bool = True, service: str | None = None) -> str:
        return self.run(self.compose_args(*args), timeout=timeout, check=check, service=service)

    def container(self, service: str) -> str | None:
        ids = self.compose("ps", "-aq", service, check=False).split()
        return ids[0] if ids else None

    def state(self, service: str) -> dict[str, Any]:
        container = self.container(service)
        if container is None:
            return {}
        out = self.run(["docker", "inspect", "--format", "{{json .State}}", container], check=False)
        return json.loads(out) if out.strip() else {}

    def health(self, service: str) -> str | None:
        state = self.state(service)
        if state.get("Status") in ("exited", "dead") or state.get("Restarting"):
            raise CheckFailed(f"{service} is {state.get('Status')} (exit {state.get('ExitCode')})", service)
        return (state.get("Health") or {}).get("Status")

    def log_tail(self, service: str, lines: int = 60) -> str:
        return _ANSI.sub("", self.compose("logs", "--no-color", "--tail", str(lines), service, check=False, timeout=60))

    def last_json(self, service: str) -> dict[str, Any]:
        """The service's JSON result: the last line of its log that is a JSON object (standard output and error
        are merged, so a log line may come after it)."""
        out = self.compose("logs", "--no-color", "--no-log-prefix", "--tail", "20", service, service=service)
        for line in reversed(_ANSI.sub("", out).splitlines()):
            if line.startswith("{"):
                try:
                    value = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(value, dict):
                    return value
        raise CheckFailed(f"no JSON result in {service}'s log: {out[-2000:]!r}", service)

    def versions(self) -> list[dict[str, Any]]:
        """`python -m training models list --json` in the worker: one JSON object per version."""
        out = self.compose("exec", "-T", "worker", "python", "-m", "training", "models", "list", "--json",
                           service="worker")  # fmt: skip
        return [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]

    def exec_python(self, service: str, code: str) -> str:
        return self.compose("exec", "-T", service, "python", "-c", code, service=service, timeout=120)

    # -- steps ------------------------------------------------------------------------------------------------
    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        print(f"-- {name}", flush=True)
        started = time.monotonic()
        yield
        took = time.monotonic() - started
        self.figures.append((name, took))
        print(f"   ok  {took:7.1f} s  {name}", flush=True)

    def figure(self, name: str, seconds: float) -> None:
        self.figures.append((name, seconds))
        print(f"   ..  {seconds:7.2f} s  {name}", flush=True)

    def prepare(self, fake: FakeSlack) -> None:
        """A copy of the checkout's files, a .env from .env.example, and no container or volume of the project."""
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        if self.folder.exists():
            self.compose("down", "-v", "--remove-orphans", check=False, timeout=300)
            shutil.rmtree(self.folder)
        for name in filter(None, listed.split("\0")):
            source = ROOT / name
            if source.is_file():
                (self.folder / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, self.folder / name)
        host = self.gateway or "host.docker.internal"
        values = {
            "SLACK_BOT_TOKEN": "xoxb-compose-check",
            "SLACK_SIGNING_SECRET": SECRET,
            "ADMIN_USER_IDS": ADMIN,
            "SLACK_API_URL": f"http://{host}:{fake.port}/api/",
            "HF_HUB_OFFLINE": "1",
            "FETCH_ALLOWED_NETWORKS": "",
        }
        lines = []
        for line in (self.folder / ".env.example").read_text().splitlines():
            name = line.split("=", 1)[0]
            lines.append(f"{name}={values.pop(name)}" if name in values else line)
        lines += [f"{k}={v}" for k, v in values.items()]
        (self.folder / ".env").write_text("\n".join(lines) + "\n")
        build_archive(self.folder / CORPUS, per_class=12)

    def images(self) -> dict[str, str]:
        """Service → image id, for the services that run a newsbot image."""
        config = json.loads(self.compose("config", "--format", "json"))
        ids = {}
        for name in NEWSBOT_SERVICES:
            image = config["services"][name]["image"]
            ids[name] = self.run(["docker", "image", "inspect", "--format", "{{.Id}}", image]).strip()
        return ids


def newsbot_distribution_left(stack: Stack, image: str) -> str:
    """What ``pip show newsbot`` finds in ``image`` (nothing: the dependency install left no package behind)."""
    return stack.run(
        ["docker", "run", "--rm", "--entrypoint", "python", image, "-m", "pip", "show", "newsbot"], check=False
    ).strip()


# The locked set each image installs (Dockerfile; scripts/lock exports them), and what may be there beside it: the
# base image's installers (pip, and setuptools and wheel where the set does not lock them), and the worker's torch
# step (torch and its CUDA build's packages, from the PyTorch index).
IMAGE_LOCKS = {"bot": "bot.txt", "bootstrap": "train.txt", "rq-dashboard": "ops.txt"}
BESIDE_THE_LOCK = re.compile(r"^(pip|setuptools|wheel|torch|triton|nvidia-.*|cuda-.*)$")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_pins(export: Path, python_version: str) -> dict[str, str]:
    """The pins of a requirements export that apply to Linux on ``python_version`` (markers evaluated)."""
    try:
        from packaging.markers import Marker
    except ImportError:  # run with a bare python3: pip's own copy
        from pip._vendor.packaging.markers import Marker  # type: ignore[no-redef]
    environment = {
        "sys_platform": "linux",
        "platform_system": "Linux",
        "python_full_version": python_version,
        "python_version": ".".join(python_version.split(".")[:2]),
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
    pins = {}
    for entry in re.sub(r"\\\n\s*", " ", export.read_text()).splitlines():
        entry = re.sub(r"\s*--hash=\S+", "", entry.split("#", 1)[0]).strip()
        if not entry:
            continue
        requirement, _, marker = entry.partition(";")
        name, _, version = requirement.strip().partition("==")
        if not marker.strip() or Marker(marker.strip()).evaluate(environment):
            pins[_normal(name)] = version.strip()
    return pins


def differences_from_the_lock(stack: Stack, image: str, export: Path) -> list[str]:
    """How the distributions installed in ``image`` differ from ``export``'s pins: each locked package at its
    locked version, and nothing else but the base image's installers and the torch step. Where a name is installed
    twice (Debian's copy in /usr/lib and pip's in /usr/local on the stand-in base), the one imported counts: the
    first on sys.path."""
    probe = (
        "import json, platform; from importlib import metadata as m; "
        "print(json.dumps([platform.python_version(), [[d.metadata['Name'], d.version] for d in m.distributions()]]))"
    )
    out = stack.run(["docker", "run", "--rm", "--entrypoint", "python", image, "-c", probe])
    python_version, installed = json.loads(out)
    have: dict[str, str] = {}
    for name, version in installed:
        have.setdefault(_normal(name), version)
    want = locked_pins(export, python_version)
    wrong = [f"{n} {have.get(n, 'missing')} (locked {v})" for n, v in sorted(want.items()) if have.get(n) != v]
    extra = [
        f"{n} {v} (not in the lock)" for n, v in sorted(have.items()) if n not in want and not BESIDE_THE_LOCK.match(n)
    ]
    return wrong + extra


def run_check(work: Path, override: bool, keep: bool) -> Stack:
    stack = Stack(work, override)
    fake = FakeSlack(host="0.0.0.0").start()  # the containers reach it at the compose network's gateway
    base = f"http://{stack.gateway or 'host.docker.internal'}:{fake.port}"
    fake.public_base = base  # the upload URLs it hands out must be reachable from the containers
    events = f"http://127.0.0.1:{stack.ports['PORT']}/slack/events"
    try:
        with stack.step("prepare: a copy of the checkout, .env, empty volumes"):
            stack.prepare(fake)

        with stack.step("build (profile ops)"):
            stack.compose("build")
        ids = stack.images()
        distinct = {(n, i) for n, i in ids.items()}
        worker_ids = {ids[n] for n in ("bootstrap", "worker", "train-worker")}
        if len(worker_ids) != 1:
            raise CheckFailed(f"bootstrap, worker and train-worker run different images: {distinct}")
        for name in ("bot", "bootstrap", "rq-dashboard"):
            size = int(stack.run(["docker", "image", "inspect", "--format", "{{.Size}}", ids[name]]).strip())
            print(f"   ..  {size / 1e6:7.0f} MB  image of {name}", flush=True)
            left = newsbot_distribution_left(stack, ids[name])
            if left:
                raise CheckFailed(f"the image of {name} keeps a newsbot distribution:\n{left}")
            export = stack.folder / "requirements" / IMAGE_LOCKS[name]
            differences = differences_from_the_lock(stack, ids[name], export)
            if differences:
                raise CheckFailed(f"the image of {name} is not {export.name}'s set:\n" + "\n".join(differences))
            print(f"   ..  the image of {name} holds {export.name}'s versions exactly", flush=True)

        with stack.step("offline corpus into the data volume (docs/deploy.md's recipe)"):
            stack.compose(
                "run", "--rm", "--no-deps", "-v", f"{stack.folder / CORPUS}:/in/{CORPUS}:ro", "bootstrap",
                "python", "-c",
                f"import os, shutil; os.makedirs('/data/corpus', exist_ok=True); "
                f"shutil.copy('/in/{CORPUS}', '/data/corpus/')",
                service="bootstrap",
            )  # fmt: skip
            with (stack.folder / ".env").open("a") as env:
                env.write(f"TRAIN_DATA=/data/corpus/{CORPUS}\n")

        with stack.step("up: bootstrap exits 0; bot, worker, train-worker healthy"):
            started = time.monotonic()
            stack.compose("up", "-d", service="bootstrap")
            state = wait("bootstrap to exit", lambda: stack.state("bootstrap").get("Status") == "exited" or None,
                         600, "bootstrap")  # fmt: skip
            if stack.state("bootstrap").get("ExitCode") != 0:
                raise CheckFailed("bootstrap did not exit 0", "bootstrap")
            del state
            first = stack.last_json("bootstrap")
            if not (first.get("trained") and first.get("promoted")):
                raise CheckFailed(f"bootstrap made no model: {first}", "bootstrap")
            for service in HEALTHY:
                wait(f"{service} healthy", lambda s=service: stack.health(s) == "healthy" or None, 300, service)  # type: ignore[misc]
                stack.figure(f"up → {service} healthy", time.monotonic() - started)

        with stack.step("a signed mention answered in its thread"):
            body = event_body(
                mention_event(MENTION_TS, "日本代表は試合終了間際のゴールで勝利した。", channel="C42", user="U1"), "Ev1"
            )
            sent = time.monotonic()
            status = http_post(events, body, signed_json_headers(body, SECRET))
            if status != 200:
                raise CheckFailed(f"the bot answered the mention with HTTP {status}", "bot")
            replies = wait(
                "the reply in the mention's thread",
                lambda: [c for c in fake.calls_to("chat.postMessage") if c.params.get("thread_ts") == MENTION_TS],
                60,
                "worker",
                every=0.02,
            )
            stack.figure("mention POST → reply posted", replies[0].at - time.time() + time.monotonic() - sent)

        with stack.step("/retrain type=linear: registered, promoted, hot-reloaded"):
            fields = {
                "token": "unused", "team_id": "T0001", "team_domain": "fake", "channel_id": "CNEWS",
                "channel_name": "news", "user_id": ADMIN, "user_name": "admin", "command": "/retrain",
                "text": "type=linear", "api_app_id": "A0001", "response_url": f"{base}/response/r",
                "trigger_id": "1.1.compose-check",
            }  # fmt: skip
            form = form_body(fields)
            headers = {"Content-Type": "application/x-www-form-urlencoded", **slack_signature_headers(form, SECRET)}
            if (status := http_post(events, form, headers)) != 200:
                raise CheckFailed(f"the bot answered /retrain with HTTP {status}", "bot")
            sent = time.monotonic()
            done = wait(
                "the /retrain report",
                lambda: [c for c in fake.calls_to("chat.update") if "Done" in c.params.get("text", "")],
                600,
                "train-worker",
            )
            reported = time.monotonic()
            stack.figure("/retrain → report posted", reported - sent)
            versions = stack.versions()
            new = [v for v in versions if v["version"] != first["version"]]
            if len(new) != 1 or new[0].get("model_type") != "linear" or not new[0].get("is_current"):
                raise CheckFailed(f"no new linear version registered and promoted: {versions}", "train-worker")
            version = new[0]["version"]
            if f"`{version}`" not in done[-1].params["text"]:
                raise CheckFailed(f"the report does not name {version}: {done[-1].params['text']}", "train-worker")
            healthz = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:9100/healthz').read().decode())"

            def served() -> bool:
                details = json.loads(stack.exec_python("worker", healthz))
                return version in json.dumps(details) or False

            wait(f"the worker to serve {version}", served, 120, "worker", every=0.5)
            stack.figure("report posted → worker serves the new version", time.monotonic() - reported)

        with stack.step("ops profile: rq-dashboard, TensorBoard, Prometheus"):
            dashboard = f"http://127.0.0.1:{stack.ports['RQ_DASHBOARD_PORT']}"
            queues = wait(
                "rq-dashboard's queue list",
                lambda: (lambda r: r[1] if r[0] == 200 else None)(http_get(f"{dashboard}/0/data/queues.json")),
                120,
                "rq-dashboard",
            )
            names = {q["name"] for q in json.loads(queues)["queues"]}
            if not {"classify", "train"} <= names:
                raise CheckFailed(f"rq-dashboard lists {names}", "rq-dashboard")
            board = f"http://127.0.0.1:{stack.ports['TENSORBOARD_PORT']}/"
            wait("TensorBoard", lambda: http_get(board)[0] == 200 or None, 120, "tensorboard")
            targets_url = f"http://127.0.0.1:{stack.ports['PROMETHEUS_PORT']}/api/v1/targets"

            def all_up() -> list[Any] | None:
                status, body = http_get(targets_url)
                if status != 200:
                    return None
                active = json.loads(body)["data"]["activeTargets"]
                jobs = {t["labels"]["job"]: t["health"] for t in active}
                return active if jobs == {"bot": "up", "worker": "up", "train-worker": "up"} else None

            wait("every Prometheus target up", all_up, 120, "prometheus", every=2)

        with stack.step("docker diff: nothing written outside the volumes"):
            for service in NEWSBOT_SERVICES:
                container = stack.container(service)
                if container is None:
                    raise CheckFailed(f"no container for {service}", service)
                mounts = json.loads(stack.run(["docker", "inspect", "--format", "{{json .Mounts}}", container]))
                targets = {m["Destination"] for m in mounts or []}
                # A mount point the image lacks is made by Docker (A /runs); it and its parent folders aside.
                ignored = {f"A {t}" for t in targets} | {f"C {p}" for t in targets for p in Path(t).parents}
                lines = stack.run(["docker", "diff", container]).splitlines()
                changed = "\n".join(line for line in lines if line.strip() and line.strip() not in ignored)
                if changed:
                    raise CheckFailed(f"{service} wrote outside its volumes:\n{changed}", service)

        with stack.step("down (docs/deploy.md's command): no container left"):
            stack.run(["docker", "compose", "-p", PROJECT, *[a for n in stack.files for a in ("-f", n)], "--profile",
                       "ops", "down"], timeout=600)  # fmt: skip
            left = stack.run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}"])
            if left.strip():
                raise CheckFailed(f"containers left after down: {left.split()}")

        with stack.step("up again: the model kept, bootstrap does nothing"):
            stack.compose("up", "-d", service="bootstrap")
            wait("bootstrap to exit", lambda: stack.state("bootstrap").get("Status") == "exited" or None, 300,
                 "bootstrap")  # fmt: skip
            again = stack.last_json("bootstrap")
            if stack.state("bootstrap").get("ExitCode") != 0 or again.get("trained"):
                raise CheckFailed(f"bootstrap trained again: {again}", "bootstrap")
            wait("worker healthy", lambda: stack.health("worker") == "healthy" or None, 300, "worker")
            current = [v["version"] for v in stack.versions() if v.get("is_current")]
            if current != [version]:
                raise CheckFailed(f"the current version after down/up is {current}, not {version}", "worker")
        return stack
    except CheckFailed as failure:
        print(f"FAILED: {failure}", flush=True)
        if failure.service:
            print(f"--- last lines of {failure.service}'s log:\n{stack.log_tail(failure.service)}", flush=True)
        raise
    finally:
        fake.stop()
        if not keep:
            stack.compose("down", "-v", "--remove-orphans", check=False, timeout=600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave the stack running with its volumes at the end")
    parser.add_argument("--no-override", action="store_true", help=f"the real compose files alone, without {OVERRIDE}")
    parser.add_argument("--work", default=os.environ.get("COMPOSE_CHECK_HOME", "/var/tmp/compose-check"))
    args = parser.parse_args(argv)
    if (reason := engine_unavailable()) is not None:
        print(f"compose-check: {reason}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        stack = run_check(Path(args.work), override=not args.no_override, keep=args.keep)
    except CheckFailed:
        return 1
    print(f"compose-check: passed in {time.monotonic() - started:.0f} s")
    for name, seconds in stack.figures:
        print(f"  {seconds:8.2f} s  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
