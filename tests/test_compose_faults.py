"""The faults the first real `docker compose` run found (issue 18), each pinned by a test of the files or code.

1. The ops image installed rq-dashboard unpinned (python-dateutil 4 dropped six: crash loop); now from the lock.
2. `pip uninstall -y -q newsbot` did nothing (the empty package was built in /app, on PYTHONPATH; -q hid it); the
   images now install only hashed requirements files, never the project.
3. A plain `docker compose down`, as the runbook said, left the ops profile's containers running.
4. RQ's "cleaning registries" line at INFO every 5 s, on unbounded json-file logs.
5. `s3fs[boto3]` named an extra s3fs no longer has.
6. bootstrap, worker and train-worker each built the same image: three image ids per `up`.
7. The offline corpus recipe made a volume compose had not created, named after the checkout's folder; the bot
   logged Bolt's "token will be unused" notice at every start.
The compose check (scripts/compose-check, tests/test_compose_stack.py) sees 1, 2, 3 and 6 on a real engine too.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
import tomllib
from typing import Any

import pytest
import redis
from packaging.requirements import Requirement

from bot.app import build_app
from bot.submit import JobSubmitter
from common.settings import Settings
from testkit.fake_slack import FakeSlack
from tests.compose_files import BASE, ROOT, VARIANTS, dockerfile_stages, load_compose
from worker.batching import BatchingWorker

DEPLOY_DOC = ROOT / "docs" / "deploy.md"


def _runs() -> list[tuple[str, str]]:
    return [(stage, args) for stage, steps in dockerfile_stages().items() for ins, args in steps if ins == "RUN"]


# The locked requirements file each image installs (scripts/lock exports them from uv.lock).
IMAGE_LOCKS = {"bot": "bot.txt", "worker": "train.txt", "ops": "ops.txt"}


def test_every_pip_install_of_an_image_is_from_its_lock() -> None:
    """(1) Each image installs the locked versions, hash-checked and unresolved (--no-deps), then `pip check`;
    torch's own line is the one exception: the pinned torch from the wheel index TORCH_INDEX_URL. The ops image's
    set is the `ops` dependency group, which names six (rq-dashboard imports it without declaring it)."""
    installs = [(stage, args) for stage, args in _runs() if "pip install" in args]
    assert {stage for stage, _ in installs} >= set(IMAGE_LOCKS)
    for stage, args in installs:
        if '--index-url "${TORCH_INDEX_URL}"' in args:
            assert re.search(r'"torch==\$\{TORCH_VERSION\}"$', args), args
            continue
        lock = IMAGE_LOCKS[stage]
        assert re.match(rf"pip install --require-hashes --no-deps -r /tmp/requirements/{lock} && pip check\b", args), (
            f"{stage}: {args}"
        )
    ops = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]["ops"]
    assert {Requirement(r).name for r in ops} >= {"rq-dashboard", "six", "tensorboard", "rq"}
    locked = (ROOT / "requirements" / "ops.txt").read_text()
    assert re.search(r"^six==", locked, re.M) and re.search(r"^rq-dashboard==0\.9\.0 ", locked, re.M)


def test_no_image_installs_the_project_itself() -> None:
    """(2) The images used to build an empty newsbot package to carry an extra's requirements, which a quiet
    uninstall then failed to remove. They now install requirements files alone: nothing named newsbot, no local
    path, and nothing to uninstall; the code runs from /app."""
    for stage, args in _runs():
        if "pip " not in args:
            continue
        assert "pip uninstall" not in args and "newsbot" not in args, f"{stage}: {args}"
        for part in args.split("&&"):
            words = part.split()
            if words[:2] == ["pip", "install"]:
                targets = [w for w in words[2:] if not w.startswith("-") and not w.startswith("/tmp/requirements/")]
                torch = ['"${TORCH_INDEX_URL}"', '"torch==${TORCH_VERSION}"']  # --index-url's value, then torch
                assert targets in ([], torch), f"{stage} installs {targets}"


def test_the_runbook_stops_the_stack_with_the_ops_profile() -> None:
    """(3) Compose acts only on the profiles it is given: every `down` in the runbook and the compose file's header
    names the ops profile, so that its containers stop too (a restore into a running stack's volume is unsafe)."""
    doc = DEPLOY_DOC.read_text(encoding="utf-8")
    downs = re.findall(r"docker compose[^`\n]*? down\b[^`\n]*", doc)
    assert downs, "the runbook says how to stop the stack"
    for line in downs:
        assert "--profile ops" in line, line
    header = (ROOT / BASE).read_text().split("\nname:", 1)[0]
    assert "docker compose --profile ops down" in header


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_service_log_is_rotated(variant: str) -> None:
    """(4) json-file logs are capped per container, in the compose file rather than the host's daemon.json."""
    for name, service in load_compose(*VARIANTS[variant])["services"].items():
        logging_ = service.get("logging") or {}
        assert logging_.get("driver") == "json-file", name
        options = logging_.get("options") or {}
        assert re.fullmatch(r"\d+m", str(options.get("max-size"))), (name, options)
        assert int(options.get("max-file", 0)) >= 1, (name, options)


def test_rq_routine_maintenance_logs_at_debug_only(redis_conn: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    """(4) The worker runs RQ's maintenance every 5 s; its "cleaning registries" line is kept out of an INFO
    log and shown at DEBUG."""
    worker = BatchingWorker(["classify"], connection=redis_conn)
    rq_log = logging.getLogger("rq.worker")
    level = rq_log.level
    try:
        rq_log.setLevel(logging.INFO)
        with caplog.at_level(logging.INFO, logger="rq.worker"):
            worker.clean_registries()
        assert not [r for r in caplog.records if "cleaning registries" in r.getMessage()]
        caplog.clear()
        rq_log.setLevel(logging.DEBUG)
        with caplog.at_level(logging.DEBUG, logger="rq.worker"):
            worker.clean_registries()
        (line,) = [r for r in caplog.records if "cleaning registries" in r.getMessage()]
        assert line.levelno == logging.DEBUG
    finally:
        rq_log.setLevel(level)


def _requirements() -> list[Requirement]:
    project: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    return [Requirement(name) for name in names]


def test_every_extra_a_requirement_names_exists() -> None:
    """(5) pip only warns about an extra a package does not have; the requirement then means less than it says."""
    for requirement in _requirements():
        if requirement.name == "newsbot" or not requirement.extras:
            continue
        try:
            provided = importlib.metadata.metadata(requirement.name).get_all("Provides-Extra") or []
        except importlib.metadata.PackageNotFoundError:
            continue
        missing = requirement.extras - {re.sub(r"[-_.]+", "-", e).lower() for e in provided}
        assert not missing, f"{requirement}: {requirement.name} has no extra {sorted(missing)}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_image_is_built_by_one_service_and_run_by_name_by_the_others(variant: str) -> None:
    """(6) One build per image and `up`: the other services that run it name it with pull_policy never."""
    services = load_compose(*VARIANTS[variant])["services"]
    builders: dict[str, list[str]] = {}
    for name, service in services.items():
        if "build" in service:
            builders.setdefault(service["image"], []).append(name)
    assert all(len(names) == 1 for names in builders.values()), builders
    for name, service in services.items():
        if "build" not in service and service["image"] in builders:
            assert service.get("pull_policy") == "never", f"{name} would pull {service['image']} from a registry"
    assert set(builders) >= {services["worker"]["image"], services["bot"]["image"], services["tensorboard"]["image"]}


def test_the_offline_corpus_recipe_uses_the_volume_compose_made() -> None:
    """(7) The recipe copies the archive in through the bootstrap service itself (`docker compose run`): the volume
    is compose's own, with its labels, whatever the checkout's folder is called, and owned by the image's user.
    The project has a fixed name, so that the runbook's volume names (newsbot_models, …) hold."""
    section = DEPLOY_DOC.read_text(encoding="utf-8").split("## The first model", 1)[1].split("\n## ", 1)[0]
    assert "docker volume create" not in section and "newsbot_" not in section
    assert "docker compose run --rm --no-deps" in section and "bootstrap" in section
    assert load_compose(BASE)["name"] == "newsbot"


def test_the_bot_does_not_log_bolts_token_notice(
    redis_conn: redis.Redis, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(7) Bolt reads SLACK_BOT_TOKEN from the environment (as in every container) and, given our client, would
    say at every start that the token is unused; other Bolt warnings still show."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-env")
    settings = Settings(slack_bot_token="xoxb-from-env", slack_signing_secret="s", slack_api_url=fake_slack.api_url)
    with caplog.at_level(logging.DEBUG):
        build_app(settings, JobSubmitter(redis_conn))
    assert not [r for r in caplog.records if "will be unused" in r.getMessage()]
    logging.getLogger("slack_bolt.App").warning("another Bolt warning")
    assert [r for r in caplog.records if r.getMessage() == "another Bolt warning"]
