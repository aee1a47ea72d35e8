"""The deployment files hold together without a Docker engine: what compose runs exists, what it writes is on a
named volume the image's user owns, GPUs are settings, the CPU variant reserves none, the build context is small.

Compose files are merged by Compose's rules (tests/compose_files.py) in every documented combination: the GPU
default, the CPU override and the HTTP-mode override.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Callable
from typing import Any

import pytest
from packaging.utils import canonicalize_name

from common.settings import Settings
from tests.compose_files import (
    BASE,
    CPU,
    HTTP,
    ROOT,
    VARIANTS,
    copied_sources,
    docker_ignores,
    dockerfile_stages,
    environment,
    image_build,
    load_compose,
    named_volume_mounts,
    stage_instructions,
    variables_in,
    volume_of,
)
from tests.lanes import ALL_LANE, FAST_LANE

WORKER_SERVICES = ("bootstrap", "worker", "train-worker")
GPU_SERVICES = ("worker", "train-worker")
# Settings a process writes below; each must be an absolute path on a named volume in every service that has it.
WRITABLE_SETTINGS = (
    "MODEL_DIR",
    "BASE_MODELS_DIR",
    "DATA_CACHE_DIR",
    "TRAIN_RUN_DIR",
    "HF_HOME",
    "MPLCONFIGDIR",
    "XDG_CACHE_HOME",
)
SETTINGS = {name.upper() for name in Settings.model_fields}
DEPLOY_DOC = ROOT / "docs" / "deploy.md"


def documented_compose_variables() -> set[str]:
    section = DEPLOY_DOC.read_text(encoding="utf-8").split("## Compose variables", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z_][A-Z0-9_]*)` \|", section, flags=re.M))


def devices(service: dict[str, Any]) -> list[dict[str, Any]]:
    return list(service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", []))


def command_of(service: dict[str, Any], target: str | None = None) -> list[str]:
    """The service's command, or its image target's CMD (``target``: that of the image it runs, if not its own)."""
    command = service.get("command")
    if command is None:
        target = target or service["build"]["target"]
        cmd = next(args for ins, args in reversed(stage_instructions(target)) if ins == "CMD")
        command = re.findall(r'"([^"]*)"', cmd)
    return shlex.split(command) if isinstance(command, str) else list(command)


def _argv_parser(module: str) -> Callable[[list[str]], object]:
    if module == "training":
        from training.cli import _parser

        return lambda argv: _parser().parse_args(argv)
    if module == "worker":
        from worker.__main__ import parse_args as worker_args

        return worker_args
    from bot.__main__ import parse_args as bot_args

    return bot_args


def product_services(files: list[str]) -> dict[str, Any]:
    """The services a plain ``docker compose up`` starts (no profile)."""
    return {n: s for n, s in load_compose(*files)["services"].items() if not s.get("profiles")}


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_command_runs_a_module_the_image_has_with_arguments_it_accepts(variant: str) -> None:
    services = product_services(VARIANTS[variant])
    assert set(services) == {"redis", "bot", *WORKER_SERVICES}
    for name, service in services.items():
        built = name != "redis"
        command = command_of(service, image_build(services, name)["target"]) if built else service["command"]
        if name == "redis":
            assert command[0] == "redis-server"
            continue
        assert command[:2] == ["python", "-m"], (name, command)
        module = command[2]
        assert (ROOT / module / "__main__.py").is_file(), (name, module)
        assert module in copied_sources(image_build(services, name)["target"]), f"{name}: image lacks {module}/"
        _argv_parser(module)(command[3:])  # argparse exits (SystemExit) on a subcommand or option it lacks


def test_one_worker_image_for_bootstrap_worker_and_train_worker() -> None:
    for variant, files in VARIANTS.items():
        services = load_compose(*files)["services"]
        images = {services[name]["image"] for name in WORKER_SERVICES}
        assert len(images) == 1, (variant, images)
        for name in ("bootstrap", "bot"):
            assert services[name]["pull_policy"] == "build", "a same-named registry image must never be pulled"
            assert services[name]["build"]["context"] == "."
        for name in GPU_SERVICES:  # they run the image bootstrap builds (test_compose_faults.py, fault 6)
            assert services[name]["pull_policy"] == "never" and "build" not in services[name]
        assert {image_build(services, n)["target"] for n in WORKER_SERVICES} == {"worker"}
        assert services["bot"]["build"]["target"] == "bot"
    gpu, cpu = load_compose(BASE)["services"], load_compose(BASE, CPU)["services"]
    assert gpu["worker"]["image"] != cpu["worker"]["image"], "the CPU build must not overwrite the GPU image's tag"


def test_workers_start_after_the_bootstrap_has_made_a_model() -> None:
    services = load_compose(BASE)["services"]
    bootstrap = services["bootstrap"]
    assert command_of(bootstrap) == ["python", "-m", "training", "bootstrap"]
    assert bootstrap["restart"] == "no"
    for name in GPU_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["bootstrap"] == {"condition": "service_completed_successfully"}
        assert depends["redis"] == {"condition": "service_healthy"}
    assert "bootstrap" not in services["bot"]["depends_on"], "the bot takes mentions while the first model trains"


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_environment_name_is_a_setting_or_a_documented_compose_variable(variant: str) -> None:
    known = SETTINGS | documented_compose_variables()
    for name, service in load_compose(*VARIANTS[variant])["services"].items():
        unknown = set(environment(service)) - known
        assert not unknown, f"{name}: {unknown} are neither Settings fields nor in docs/deploy.md"
    for file in VARIANTS[variant]:
        unknown = variables_in((ROOT / file).read_text()) - known
        assert not unknown, f"{file}: ${{{unknown}}} undocumented"


def test_every_documented_compose_variable_is_used() -> None:
    used = "".join((ROOT / f).read_text() for f in (BASE, CPU, HTTP, "Dockerfile"))
    documented = documented_compose_variables()
    assert {"SERVE_GPU", "TRAIN_GPU", "TORCH_INDEX_URL", "HF_HOME"} <= documented
    assert not (documented & SETTINGS), "a Settings field belongs in README's Configuration table"
    assert all(name in used for name in documented), documented


@pytest.mark.parametrize("variant", VARIANTS)
def test_everything_a_process_writes_is_on_a_named_volume(variant: str) -> None:
    model = load_compose(*VARIANTS[variant])
    services = model["services"]
    for name in WORKER_SERVICES:
        service = services[name]
        env, mounts = environment(service), named_volume_mounts(model, service)
        for setting in WRITABLE_SETTINGS:
            assert env.get(setting, "").startswith("/"), f"{name}: {setting} must be set to an absolute path"
            assert volume_of(env[setting], mounts), f"{name}: {setting}={env[setting]} is on no named volume"
        assert "REDIS_URL" in env and "MODEL_PATH" not in env
    redis = services["redis"]
    data_dir = redis["command"][redis["command"].index("--dir") + 1]
    assert volume_of(data_dir, named_volume_mounts(model, redis)) == "redis-data"
    assert "--appendonly" in redis["command"] and "yes" in redis["command"]
    # One models volume: the worker serves what train-worker and bootstrap register.
    model_volumes = {volume_of(environment(services[n])["MODEL_DIR"], named_volume_mounts(model, services[n]))
                     for n in WORKER_SERVICES}  # fmt: skip
    assert model_volumes == {"models"}


def test_the_image_owns_its_volume_mount_points_and_defaults_to_them() -> None:
    """A fresh named volume copies its mount point's owner from the image: the worker stage creates each mount
    point and chowns it to the user the processes run as, before switching to that user; its ENV defaults equal
    compose's, so a plain `docker run` writes to the same places."""
    instructions = stage_instructions("worker")
    runs = " ".join(args for ins, args in instructions if ins == "RUN")
    env_defaults = dict(
        pair.split("=", 1) for ins, args in instructions if ins == "ENV" for pair in shlex.split(args) if "=" in pair
    )
    model = load_compose(BASE)
    service = model["services"]["worker"]
    for target in named_volume_mounts(model, service):
        assert re.search(rf"mkdir -p [^&]*{re.escape(target)}\b", runs), f"{target} is not created"
        assert re.search(rf"chown newsbot:newsbot [^&]*{re.escape(target)}\b", runs), f"{target} is not chowned"
    for setting in WRITABLE_SETTINGS:
        assert env_defaults[setting] == environment(service)[setting]
    users = [i for i, (ins, _) in enumerate(instructions) if ins == "USER"]
    chown = next(i for i, (ins, args) in enumerate(instructions) if ins == "RUN" and "chown" in args)
    assert users and instructions[users[-1]][1] == "newsbot" and users[-1] > chown
    assert env_defaults["PYTHONPATH"] == "/app"


def test_gpu_services_use_different_gpus_by_default_and_the_gpu_is_a_setting() -> None:
    services = load_compose(BASE)["services"]
    chosen = {}
    for name in GPU_SERVICES:
        (device,) = devices(services[name])
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
        assert "count" not in device, "count: 1 gives every service GPU 0"
        chosen[name] = device["device_ids"]
    assert chosen == {"worker": ["0"], "train-worker": ["1"]}
    one_gpu = load_compose(BASE, env={"SERVE_GPU": "0", "TRAIN_GPU": "0"})["services"]
    assert [devices(one_gpu[n])[0]["device_ids"] for n in GPU_SERVICES] == [["0"], ["0"]]
    assert not devices(services["bootstrap"]), "the linear bootstrap needs no GPU"


def test_the_cpu_variant_reserves_no_gpu_and_builds_the_cpu_torch() -> None:
    for files in (VARIANTS["cpu"], VARIANTS["cpu+http"]):
        services = load_compose(*files)["services"]
        for name, service in services.items():
            assert not devices(service), f"{name} still reserves a GPU"
        for name in WORKER_SERVICES:
            build = image_build(services, name)
            assert build["target"] == "worker" and build["context"] == "."
            assert build["args"]["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    gpu_args = image_build(load_compose(BASE)["services"], "worker")["args"]
    assert gpu_args["TORCH_INDEX_URL"].startswith("https://download.pytorch.org/whl/cu")


def test_http_mode_publishes_the_events_port_with_a_health_check() -> None:
    from bot.server import HEALTH_PATH

    socket_bot = load_compose(BASE)["services"]["bot"]
    assert "--http" not in command_of(socket_bot) and "ports" not in socket_bot
    bot = load_compose(BASE, HTTP)["services"]["bot"]
    assert command_of(bot)[:4] == ["python", "-m", "bot", "--http"]
    assert bot["ports"] == ["3000:3000"]
    assert load_compose(BASE, HTTP, env={"PORT": "8080"})["services"]["bot"]["ports"] == ["8080:3000"]
    assert any(f"127.0.0.1:3000{HEALTH_PATH}" in part for part in bot["healthcheck"]["test"])


def test_the_build_context_leaves_out_local_state_and_keeps_what_the_dockerfile_copies() -> None:
    for path in (".venv/bin/python", ".git/HEAD", "models/current", ".env", "runs/x/events", ".cache/data/x.tar.gz",
                 "tests/test_deploy_files.py", "README.md", "common/__pycache__/settings.cpython-311.pyc"):  # fmt: skip
        assert docker_ignores(path), f"{path} would be sent to the Docker daemon"
    for stage in ("bot", "worker"):
        for source in copied_sources(stage):
            inside = f"{source}/__init__.py" if (ROOT / source).is_dir() else source
            assert not docker_ignores(inside), f"COPY {source} would find nothing"


def test_dependencies_are_installed_before_the_code_is_copied() -> None:
    """A code edit reuses the dependency layers: nothing but the locked requirements is copied before the pip
    installs."""
    for stage in ("bot", "worker"):
        instructions = stage_instructions(stage)
        installs = [i for i, (ins, args) in enumerate(instructions) if ins == "RUN" and "pip install" in args]
        code_copies = [
            i for i, (ins, args) in enumerate(instructions) if ins == "COPY" and not args.startswith("requirements/")
        ]
        assert installs and code_copies and max(installs) < min(code_copies), stage


def test_the_worker_image_pins_the_tested_torch_from_a_wheel_index_argument() -> None:
    worker = stage_instructions("worker")
    args = dict(a.split("=", 1) for ins, a in worker if ins == "ARG" and "=" in a)
    assert args["TORCH_VERSION"] == "2.13.0"
    assert args["TORCH_INDEX_URL"].startswith("https://download.pytorch.org/whl/cu")
    torch_install = next(a for ins, a in worker if ins == "RUN" and "torch==" in a)
    assert '--index-url "${TORCH_INDEX_URL}"' in torch_install and '"torch==${TORCH_VERSION}"' in torch_install
    # scripts/setup, used outside Docker, installs the same version.
    assert 'torch_spec="${TORCH_SPEC:-torch==2.13.0}"' in (ROOT / "scripts" / "setup").read_text()


def test_images_run_as_a_non_root_user_and_the_bot_image_has_no_torch() -> None:
    stages = dockerfile_stages()
    for stage in ("bot", "worker"):
        users = [args for ins, args in stages[stage] if ins == "USER"]
        assert users == ["newsbot"], stage
    assert "useradd --create-home --uid 10001 newsbot" in " ".join(args for _, args in stages["base"])
    bot_stage = " ".join(args for _, args in stages["bot"]).lower()
    assert "torch" not in bot_stage and "-r /tmp/requirements/bot.txt" in bot_stage


def test_the_bot_extra_installs_no_torch() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    bot_deps = " ".join(project["optional-dependencies"]["bot"]).lower()
    assert "torch" not in bot_deps and "transformers" not in bot_deps
    worker_deps = project["optional-dependencies"]["worker"]
    torch_spec = next(d for d in worker_deps if d.startswith("torch"))
    from packaging.specifiers import SpecifierSet

    assert "2.13.0" in SpecifierSet(torch_spec.removeprefix("torch"))


def test_ci_runs_every_test_with_the_command_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "scripts/run" in quick_start and "scripts/check" in quick_start
    assert "scripts/check --all" in quick_start and "what CI runs" in quick_start
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/check --all" in ci
    check = (ROOT / "scripts" / "check").read_text()
    assert "ruff check" in check and "mypy" in check and "pytest" in check
    # Alone, the fast lane (tests/lanes.py's selection); with --all, everything but the compose check.
    assert f'lane=(-m "{FAST_LANE}")' in check and f'lane=(-m "{ALL_LANE}")' in check


# --- health checks, metrics, the ops profile ---------------------------------------------------------------------
OPS_SERVICES = ("rq-dashboard", "tensorboard", "prometheus")
HEALTHCHECKED = ("bot", "worker", "train-worker")
_HEALTH_URL = re.compile(r"http://127\.0\.0\.1:(\d+)/healthz")


def ops_port_of(service: dict[str, Any]) -> int:
    """The port the service's process answers /healthz and /metrics on: --ops-port, else OPS_PORT."""
    command = command_of(service)
    if command[2] == "worker":
        from worker.__main__ import parse_args

        flag = parse_args(command[3:]).ops_port
        if flag is not None:
            return int(flag)
    return int(environment(service).get("OPS_PORT", Settings.model_fields["ops_port"].default))


def answered_ports(service: dict[str, Any]) -> set[int]:
    """Every port on which the service's process answers /healthz."""
    command = command_of(service)
    ports = {ops_port_of(service)} - {0}
    if command[2] == "bot" and "--http" in command:
        from bot.__main__ import parse_args

        ports.add(parse_args(command[3:]).port)
    return ports


def healthcheck_port(service: dict[str, Any]) -> int:
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1:3] == ["python", "-c"], test
    (port,) = _HEALTH_URL.findall(test[3])
    return int(port)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_healthcheck_asks_a_port_its_process_answers(variant: str) -> None:
    services = load_compose(*VARIANTS[variant])["services"]
    for name in HEALTHCHECKED:
        service = services[name]
        assert healthcheck_port(service) in answered_ports(service), (variant, name)
    for name in ("worker", "train-worker"):
        assert services[name]["healthcheck"]["start_period"], "a model takes a while to load"
    assert services["rq-dashboard"]["depends_on"]["redis"] == {"condition": "service_healthy"}


def test_the_healthcheck_command_fails_when_healthz_answers_503() -> None:
    """The healthcheck's Python line, run against a real ops endpoint: exit 0 on 200, non-zero on 503."""
    import subprocess
    import sys

    from telemetry.endpoint import Health, OpsServer

    checks = {"redis": True}
    server = OpsServer("127.0.0.1", 0, lambda: Health(checks=dict(checks))).start()
    try:
        service = load_compose(BASE)["services"]["worker"]
        code = service["healthcheck"]["test"][3].replace(f":{healthcheck_port(service)}/", f":{server.port}/")
        assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).returncode == 0
        checks["redis"] = False
        assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).returncode != 0
    finally:
        server.stop()


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_ops_profile_runs_dashboard_tensorboard_and_prometheus(variant: str) -> None:
    model = load_compose(*VARIANTS[variant])
    services = model["services"]
    for name in OPS_SERVICES:
        assert services[name]["profiles"] == ["ops"], name
        for port in services[name]["ports"]:
            assert port.startswith("127.0.0.1:"), f"{name} must not be published beyond this host"
    dashboard, board = services["rq-dashboard"], services["tensorboard"]
    assert {image_build(services, "rq-dashboard")["target"], image_build(services, "tensorboard")["target"]} == {"ops"}
    ops_stage = " ".join(args for ins, args in stage_instructions("ops") if ins == "RUN")
    assert "-r /tmp/requirements/ops.txt" in ops_stage  # the ops dependency group, locked (tests/test_lock.py)
    ops_group = _project()["dependency-groups"]["ops"]
    bot_rq = next(t for t in _project()["project"]["optional-dependencies"]["bot"] if t.startswith("rq"))
    assert bot_rq in ops_group  # the same rq as the product's
    assert {t.split("=")[0].split(">")[0] for t in ops_group} >= {"rq-dashboard", "tensorboard", "rq"}
    assert "--json" in dashboard["command"], "jobs are JSON-serialized (store/queues.py)"
    assert "redis://redis:6379/0" in dashboard["command"]
    # TensorBoard reads the volume train-worker writes its runs to.
    logdir = board["command"][board["command"].index("--logdir") + 1]
    train_runs = environment(services["train-worker"])["TRAIN_RUN_DIR"]
    assert volume_of(logdir, named_volume_mounts(model, board)) == volume_of(
        train_runs, named_volume_mounts(model, services["train-worker"])
    )
    assert "./ops/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in services["prometheus"]["volumes"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_prometheus_scrapes_each_process_on_its_ops_port(variant: str) -> None:
    import yaml

    services = load_compose(*VARIANTS[variant])["services"]
    config = yaml.safe_load((ROOT / "ops" / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    expected = {f"{name}:{ops_port_of(services[name])}" for name in HEALTHCHECKED}
    assert targets == expected
    assert all(job.get("metrics_path", "/metrics") == "/metrics" for job in config["scrape_configs"])


# -- packaging: extras, pins and the images' installs ---------------------------------------------------------

# The extra each product package's code is installed with (the image that runs it): its imports must be declared
# there or in an extra it includes, not only in a bigger one (scipy was declared by `train` alone while the
# worker image, which installs `train` too, hid it; a `worker`-only install could not serve a linear model).
PACKAGE_EXTRAS = {
    "common": None,  # the base install
    "store": "bot",
    "telemetry": "bot",
    "ui": "bot",
    "bot": "bot",
    "newsmodel": "worker",
    "worker": "worker",
    "training": "train",
}


def _project() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def declared_in(extra: str | None) -> set[str]:
    """Distribution names an install of newsbot[extra] declares directly, following newsbot[...] includes."""
    from packaging.requirements import Requirement

    project = _project()["project"]
    names: set[str] = set()
    todo = [None, extra] if extra else [None]
    seen: set[str | None] = set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for text in project["dependencies"] if current is None else project["optional-dependencies"][current]:
            req = Requirement(text)
            if canonicalize_name(req.name) == "newsbot":
                todo.extend(req.extras)
            else:
                names.add(canonicalize_name(req.name))
    return names


def test_each_package_imports_only_what_its_image_extra_declares() -> None:
    import ast
    import sys
    from importlib.metadata import packages_distributions

    providers = packages_distributions()
    first_party = set(PACKAGE_EXTRAS)
    missing: dict[str, list[str]] = {}
    for package, extra in PACKAGE_EXTRAS.items():
        declared = declared_in(extra)
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    tops = {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    tops = {node.module.split(".")[0]}
                else:
                    continue
                for top in tops - first_party - set(sys.stdlib_module_names) - {"__future__"}:
                    if not {canonicalize_name(d) for d in providers.get(top, [top])} & declared:
                        missing.setdefault(f"{package} ({extra or 'base'})", []).append(
                            f"{path.relative_to(ROOT)}: {top}"
                        )
    assert missing == {}


def test_the_build_backend_floor_reads_an_spdx_license() -> None:
    """``license = "MIT"`` (PEP 639) is an error before setuptools 77."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    project = _project()
    assert isinstance(project["project"]["license"], str)
    setuptools = next(Requirement(t) for t in project["build-system"]["requires"] if t.startswith("setuptools"))
    assert not setuptools.specifier.contains(Version("76.1.0")) and setuptools.specifier.contains(Version("77.0.0"))


def test_the_check_script_runs_the_dependency_check() -> None:
    check = (ROOT / "scripts" / "check").read_text()
    lines = [line.strip() for line in check.splitlines()]
    assert "deptry ." in lines and "--optional-dependencies-dev-groups train,dev" in check
    assert "deptry" in _project()["tool"]


def test_a_failing_check_stops_the_check_script() -> None:
    """Under `set -e`, a command that fails on the left of `&&` does not stop a script: `ruff check . && ruff
    format --check .` let a ruff failure through, and `deptry . && deptry …` a deptry one (the fresh-clone run
    printed deptry's error and went on). Each check stands alone on its line."""
    check = (ROOT / "scripts" / "check").read_text()
    assert "set -euo pipefail" in check
    code = [line.split("#", 1)[0] for line in check.splitlines()]
    assert [line for line in code if "&&" in line] == []
    for command in ("ruff check .", "ruff format --check .", "mypy", "deptry .", "scripts/lock --check"):
        assert any(line.strip().endswith(command) for line in code), command


def test_each_image_copies_every_package_its_processes_import() -> None:
    """The worker image lacked ``bot`` once the workers built their Slack client with ``bot.slack_client`` (and read
    editors with ``bot.editors``): every worker in compose died at start with ModuleNotFoundError, which only the
    compose check saw. The product packages an image's entry points reach through imports are all copied in."""
    from tests.test_architecture import PRODUCT_PACKAGES, REPO_ROOT, build_graph, reachable

    graph = build_graph(REPO_ROOT, PRODUCT_PACKAGES)
    for stage, entries in (("bot", ["bot"]), ("worker", ["worker", "training"])):
        starts = [m for m in graph.edges if m.split(".")[0] in entries]
        needed = {m.split(".")[0] for m in reachable(graph.edges, starts) if m.split(".")[0] in PRODUCT_PACKAGES}
        copied = {source.split("/")[0] for source in copied_sources(stage)}
        assert needed <= copied, f"the {stage} image lacks {sorted(needed - copied)}"
