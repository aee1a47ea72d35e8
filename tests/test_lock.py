"""The lock (issue 18): ``uv.lock`` resolves every extra and the ``ops`` group once, from PyPI, and
``requirements/*.txt`` are its hashed exports, which scripts/setup, CI and every image install with
``pip install --require-hashes --no-deps``. torch and the CUDA libraries it brings are the one exception: each install
puts the pinned torch in from the PyTorch index of its variant (scripts/lock, docs/deploy.md "The lock file")."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.compose_files import ROOT, stage_instructions
from tests.test_deploy_files import _project
from tests.test_deploy_files import declared_in as declared

EXPORTS = ("bot", "worker", "train", "dev", "ops")
# The torch step's own packages: pruned from every export (scripts/lock's --prune torch).
TORCH_STEP = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*)$")
# Which export each install uses.
IMAGE_LOCKS = {"bot": "bot.txt", "worker": "train.txt", "ops": "ops.txt"}


def _locked() -> dict[str, dict[str, set[str]]]:
    """uv.lock: package → version → the sha256 hashes of its files (several versions where the lock forks)."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    packages: dict[str, dict[str, set[str]]] = {}
    for package in lock["package"]:
        files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
        hashes = {f["hash"].removeprefix("sha256:") for f in files}
        packages.setdefault(canonicalize_name(package["name"]), {})[package.get("version", "")] = hashes
    return packages


def exported(name: str) -> dict[str, tuple[str, str, list[str]]]:
    """requirements/<name>.txt: package → (version, marker, hashes)."""
    text = (ROOT / "requirements" / f"{name}.txt").read_text()
    entries: dict[str, tuple[str, str, list[str]]] = {}
    for entry in re.sub(r"\\\n\s*", " ", text).splitlines():
        entry = entry.split("#", 1)[0].strip()
        if not entry:
            continue
        hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", entry)
        requirement = Requirement(re.sub(r"\s*--hash=\S+", "", entry))
        (spec,) = requirement.specifier
        assert spec.operator == "==", entry
        entries[canonicalize_name(requirement.name)] = (spec.version, str(requirement.marker or ""), hashes)
    return entries


def test_every_export_pins_each_package_to_its_locked_version_with_the_locks_hashes() -> None:
    locked = _locked()
    for name in EXPORTS:
        entries = exported(name)
        assert entries, name
        for package, (version, _, hashes) in entries.items():
            assert version in locked.get(package, {}), f"{name}.txt: {package}=={version} is not in uv.lock"
            assert hashes, f"{name}.txt: {package} has no hash (pip --require-hashes refuses it)"
            assert set(hashes) <= locked[package][version], f"{name}.txt: {package}'s hashes are not uv.lock's"


def test_each_export_covers_what_its_install_declares_and_nothing_of_the_torch_step() -> None:
    for extra in ("bot", "worker", "train", "dev"):
        names = set(exported(extra))
        assert declared(extra) - {"torch"} <= names, f"{extra}.txt lacks {sorted(declared(extra) - names)}"
        assert not {n for n in names if TORCH_STEP.match(n)}, f"{extra}.txt carries the torch step's packages"
    ops = set(exported("ops"))
    assert {canonicalize_name(Requirement(t).name) for t in _project()["dependency-groups"]["ops"]} <= ops
    # The bot image has no machine learning; the ops image runs no newsbot code (not even its base install).
    assert not {"torch", "transformers", "numpy", "scikit-learn"} & set(exported("bot"))
    assert not {"pydantic", "torch", "transformers"} & ops


def test_torchs_own_requirements_are_locked_for_every_install_that_has_torch() -> None:
    """Only torch and the CUDA libraries are left to the torch step: what the installed torch (the CPU build here)
    requires for this interpreter is pinned by each export that comes with torch."""
    environment = default_environment()
    needed = {
        canonicalize_name(requirement.name)
        for text in importlib.metadata.requires("torch") or []
        for requirement in [Requirement(text)]
        if requirement.marker is None or requirement.marker.evaluate({**environment, "extra": ""})
    }
    assert {"sympy", "networkx", "jinja2", "filelock", "fsspec"} <= needed
    for extra in ("worker", "train", "dev"):
        assert needed <= set(exported(extra)), f"{extra}.txt leaves {sorted(needed - set(exported(extra)))} unpinned"


def test_the_lock_pins_the_tested_torch_and_the_installs_take_the_same() -> None:
    assert set(_locked()["torch"]) == {"2.13.0"}
    assert 'torch_spec="${TORCH_SPEC:-torch==2.13.0}"' in (ROOT / "scripts" / "setup").read_text()
    worker = dict(a.split("=", 1) for ins, a in stage_instructions("worker") if ins == "ARG" and "=" in a)
    assert worker["TORCH_VERSION"] == "2.13.0"
    assert "torch==2.13.0" in _project()["tool"]["uv"]["constraint-dependencies"]


def test_locked_versions_are_inside_pyprojects_ranges() -> None:
    project = _project()
    texts = [*project["project"]["dependencies"], *project["dependency-groups"]["ops"]]
    texts += [t for deps in project["project"]["optional-dependencies"].values() for t in deps]
    locked = _locked()
    outside = [
        f"{r.name}{r.specifier} vs {sorted(locked[canonicalize_name(r.name)])}"
        for r in map(Requirement, texts)
        if canonicalize_name(r.name) != "newsbot"
        and not all(r.specifier.contains(v, prereleases=True) for v in locked[canonicalize_name(r.name)])
    ]
    assert outside == []


def test_rq_is_held_to_the_tested_minor_series() -> None:
    """worker/batching.py subclasses RQ's worker and uses its internals: a new minor release is a deliberate bump."""
    rq = next(Requirement(t) for t in _project()["project"]["optional-dependencies"]["bot"] if t.startswith("rq"))
    (pinned,) = (Version(v) for v in _locked()["rq"])
    assert rq.specifier.contains(pinned)
    assert not rq.specifier.contains(f"{pinned.major}.{pinned.minor + 1}.0")
    assert {exported(name)["rq"][0] for name in ("bot", "dev", "ops")} == {str(pinned)}


def test_setup_ci_and_every_image_install_from_the_lock() -> None:
    setup = (ROOT / "scripts" / "setup").read_text()
    assert 'lock="requirements/$extra.txt"' in setup
    assert 'pip install -qq --require-hashes --no-deps -r "$lock"' in setup
    assert "pip install -qq --no-deps -e ." in setup and "pip check" in setup
    assert "-c constraints" not in setup and not (ROOT / "constraints.txt").exists()
    # CI runs scripts/check, which sets up with scripts/setup and checks the lock is current.
    check = (ROOT / "scripts" / "check").read_text()
    assert "scripts/setup dev" in check and "scripts/lock --check" in check
    for stage, lock in IMAGE_LOCKS.items():
        instructions = stage_instructions(stage)
        assert ("COPY", f"requirements/{lock} /tmp/requirements/") in instructions, stage
        runs = [args for ins, args in instructions if ins == "RUN" and "pip install" in args]
        assert f"pip install --require-hashes --no-deps -r /tmp/requirements/{lock} && pip check" in " ".join(runs)


@pytest.fixture
def lock_copy(tmp_path: Path) -> Path:
    """What scripts/lock --check reads, copied: it may then be broken without touching the checkout."""
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "lock", tmp_path / "scripts" / "lock")
    return tmp_path


def _lock_check(root: Path) -> subprocess.CompletedProcess[str]:
    uv = Path(sys.executable).parent / "uv"
    env = {**os.environ, "UV": str(uv), "UV_CACHE_DIR": str(root / ".uv-cache")}
    return subprocess.run(
        ["bash", "scripts/lock", "--check"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_lock_check_fails_on_a_stale_lock_or_an_edited_export(lock_copy: Path) -> None:
    """scripts/check runs `scripts/lock --check` (offline): it passes on the committed files, and fails with the
    command to run when pyproject.toml asks for something uv.lock lacks, or an export is not uv.lock's."""
    ok = _lock_check(lock_copy)
    assert ok.returncode == 0, ok.stderr
    assert "up to date" in ok.stdout

    export = lock_copy / "requirements" / "bot.txt"
    original = export.read_text()
    export.write_text(original.replace("rq==", "rq===", 1))
    edited = _lock_check(lock_copy)
    assert edited.returncode == 1 and "requirements/bot.txt is out of date with uv.lock: run scripts/lock" in (
        edited.stderr
    )
    export.write_text(original)

    pyproject = lock_copy / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"tzdata>=2024.1",', '"tzdata>=2024.1",\n    "six>=1.16",', 1))
    stale = _lock_check(lock_copy)
    assert stale.returncode == 1 and "uv.lock is out of date with pyproject.toml: run scripts/lock" in stale.stderr


def test_the_compose_check_compares_each_image_with_its_lock() -> None:
    """The compose check's build step reads what each built image holds (a `docker run` of importlib.metadata)
    and fails on a package at another version than its lock's, or one the lock does not have; the base image's
    installers and the torch step are allowed beside it, and markers are evaluated for the image's Python."""
    from testkit.compose_check import differences_from_the_lock, locked_pins

    export = ROOT / "requirements" / "bot.txt"
    assert "async-timeout" in locked_pins(export, "3.11.2")  # redis needs it before Python 3.11.3
    assert "async-timeout" not in locked_pins(export, "3.11.7")
    pins = locked_pins(export, "3.11.7")
    assert set(pins) == {n for n, (_, marker, _) in exported("bot").items() if "3.11.3" not in marker}

    class Image:
        installed: list[list[str]]

        def run(self, argv: list[str], **_: object) -> str:
            assert argv[:3] == ["docker", "run", "--rm"] and argv[-2] == "-c"
            import json

            return json.dumps(["3.11.7", self.installed])

    image = Image()
    image.installed = [[name, version] for name, version in pins.items()] + [["pip", "24.0"], ["wheel", "0.45"]]
    assert differences_from_the_lock(image, "newsbot-bot:local", export) == []  # type: ignore[arg-type]
    image.installed = [[n, "9.9.9" if n == "rq" else v] for n, v in pins.items()] + [["requests", "2.32.0"]]
    assert differences_from_the_lock(image, "newsbot-bot:local", export) == [  # type: ignore[arg-type]
        f"rq 9.9.9 (locked {pins['rq']})",
        "requests 2.32.0 (not in the lock)",
    ]
    image.installed = [[n, v] for n, v in pins.items() if n != "redis"]
    assert differences_from_the_lock(image, "x", export) == [f"redis missing (locked {pins['redis']})"]  # type: ignore[arg-type]
