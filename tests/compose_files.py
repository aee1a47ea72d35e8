"""Reading the deployment files the way Docker reads them, for tests on a machine without a Docker engine.

* :func:`load_compose` merges compose files by the Compose merge rules this project relies on (mappings merged,
  ``command``/``entrypoint``/``healthcheck.test`` replaced, other sequences appended, ``!reset`` removing a key),
  after ``${VAR:-default}`` interpolation with the given variables.
* :func:`dockerfile_stages` splits the Dockerfile into its stages' instructions.
* :func:`docker_ignores` answers whether .dockerignore keeps a path out of the build context (last match wins,
  ``!`` re-includes, a pattern excludes a folder with everything below it).

Container conditions, for running a service's command as its container would (tests/test_bootstrap.py,
tests/test_container_stack.py): :func:`read_only_app` copies what an image target COPYs into a root-owned,
read-only "/app"; :func:`volume_folders` gives each named volume of a service a temporary folder owned by the
image's user (as a fresh named volume takes its mount point's owner); :func:`container_environment` is the image's
ENV plus the service's environment with "/app" and the mount points mapped to those folders; :func:`image_user`
is the argv prefix that runs a command as uid 10001 (setpriv) when the tests run as root.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BASE = "docker-compose.yml"
CPU = "docker-compose.cpu.yml"
HTTP = "docker-compose.http.yml"
VARIANTS = {"gpu": [BASE], "cpu": [BASE, CPU], "gpu+http": [BASE, HTTP], "cpu+http": [BASE, CPU, HTTP]}
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")
_REPLACED = {"command", "entrypoint", "test"}


class Reset:
    """The value of a ``!reset`` tag: the key is removed from the merged model."""


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!reset", lambda _loader, _node: Reset())


def variables_in(text: str) -> set[str]:
    """The names of the ``${VAR}`` interpolations in a compose file's text."""
    return {m.group("name") for m in _VARIABLE.finditer(text)}


def interpolate(text: str, env: Mapping[str, str]) -> str:
    return _VARIABLE.sub(lambda m: env.get(m.group("name")) or m.group("default") or "", text)


def _merge(base: Any, override: Any, key: str = "") -> Any:
    if isinstance(override, Reset):
        return override
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for k, v in override.items():
            merged[k] = _merge(base[k], v, k) if k in base else v
        return {k: v for k, v in merged.items() if not isinstance(v, Reset)}
    if isinstance(base, list) and isinstance(override, list) and key not in _REPLACED:
        return base + [item for item in override if item not in base]
    return override


def _strip_extensions(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if not k.startswith("x-")}


def load_compose(*files: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The merged compose model of ``files`` (relative to the repository root), interpolated with ``env``."""
    model: dict[str, Any] = {}
    for name in files or (BASE,):
        data = yaml.load(interpolate((ROOT / name).read_text(), env or {}), Loader=_Loader)
        assert isinstance(data, dict), name
        model = _merge(model, _strip_extensions(data))
    return {k: v for k, v in model.items() if not isinstance(v, Reset)}


def image_build(services: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The ``build`` of the image service ``name`` runs: its own, or that of the one service that builds the same
    image (worker and train-worker run the image bootstrap builds; tensorboard the one rq-dashboard builds)."""
    service = services[name]
    if "build" in service:
        return dict(service["build"])
    (builder,) = [s for s in services.values() if "build" in s and s.get("image") == service.get("image")]
    return dict(builder["build"])


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def named_volume_mounts(model: Mapping[str, Any], service: Mapping[str, Any]) -> dict[str, str]:
    """Mount target -> named volume, for the service's volumes that are named volumes of the model."""
    mounts = {}
    for entry in service.get("volumes") or []:
        source, target = entry.split(":")[:2] if isinstance(entry, str) else (entry["source"], entry["target"])
        if source in (model.get("volumes") or {}):
            mounts[target] = source
    return mounts


def volume_of(path: str, mounts: Mapping[str, str]) -> str | None:
    """The named volume that holds ``path`` (an absolute path in the container), if any."""
    for target, volume in mounts.items():
        if path == target or path.startswith(target.rstrip("/") + "/"):
            return volume
    return None


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its instructions as (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            name = args.split(" AS ")[-1].strip() if " AS " in args else args
            current = stages.setdefault(name, [])
        current.append((instruction.upper(), args.strip()))
    return stages


def stage_instructions(target: str) -> list[tuple[str, str]]:
    """A target's instructions, with those of the stages it is built FROM first."""
    stages = dockerfile_stages()
    own = stages[target]
    parent = own[0][1].split(" AS ")[0].strip()
    return (stage_instructions(parent) if parent in stages else []) + own


def copied_sources(target: str) -> list[str]:
    sources: list[str] = []
    for instruction, args in stage_instructions(target):
        if instruction == "COPY" and not args.startswith("--from"):
            sources.extend(args.split()[:-1])
    return sources


def docker_ignores(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` (relative, with / separators) out of the build context."""
    ignored = False
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").strip("/")
        candidates = {pattern, pattern.removeprefix("**/")}
        if any(fnmatch.fnmatchcase(prefix, p) for prefix in prefixes for p in candidates):
            ignored = not negate
    return ignored


# --- container conditions ---------------------------------------------------------------------------------------
UID = 10001  # the Dockerfile's `newsbot` user
APP = "/app"


def walk(root: Path) -> list[Path]:
    return [root, *root.rglob("*")]


def tree(root: Path) -> list[str]:
    """Every path below ``root``, relative and sorted (to compare a folder before and after)."""
    return sorted(str(p.relative_to(root)) for p in walk(root))


def _reachable_by_anyone(path: Path) -> bool:
    real = path.resolve()
    return all(folder.stat().st_mode & 0o001 for folder in real.parents) and bool(real.stat().st_mode & 0o001)


def image_user() -> list[str]:
    """The argv prefix that runs a command as the image's user: setpriv as root; nothing for another user, whom
    the read-only folders bind as they bind uid 10001. Skips the test when root has no setpriv.

    Where this interpreter lives in a folder only root may enter (a pyenv Python under /root), uid 10001 keeps
    CAP_DAC_READ_SEARCH, so that it runs the same interpreter as the tests (in the image, Python is world-readable
    under /usr/local); that capability lets it read and search any file, never write one."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root, which ignores file permissions, and setpriv is missing to become uid 10001")
    prefix = [setpriv, f"--reuid={UID}", f"--regid={UID}", "--clear-groups"]
    if not _reachable_by_anyone(Path(sys.executable)):
        prefix += ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    return prefix


def owned_folder(path: Path) -> Path:
    """A new folder owned by the image's user (when the tests can give it away: as root)."""
    path.mkdir(parents=True)
    if os.geteuid() == 0:
        os.chown(path, UID, UID)
    return path


def read_only_app(target: str, app: Path) -> list[str]:
    """Copy the folders the image ``target`` COPYs into ``app``, make them read-only; their paths, as :func:`tree`."""
    for source in copied_sources(target):
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, app / source, ignore=shutil.ignore_patterns("__pycache__"))
    for path in walk(app):
        path.chmod(path.stat().st_mode & ~0o222)
    return tree(app)


def volume_folders(model: Mapping[str, Any], service: Mapping[str, Any], root: Path) -> dict[str, Path]:
    """Mount target -> ``root/<volume name>``, owned by the image's user, for the service's named volumes."""
    folders = {}
    for target, name in named_volume_mounts(model, service).items():
        folder = root / name
        folders[target] = folder if folder.is_dir() else owned_folder(folder)
    return folders


def env_file(name: str) -> dict[str, str]:
    """A compose ``env_file`` (``NAME=value`` lines; ``#`` comments and blank lines skipped), e.g. .env.example."""
    lines = (line.strip() for line in (ROOT / name).read_text(encoding="utf-8").splitlines())
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#") and "=" in line)


def image_environment(target: str) -> dict[str, str]:
    """The ENV of the image ``target`` (its stages' ENV instructions in order, ``NAME=value`` form)."""
    env: dict[str, str] = {}
    for instruction, args in stage_instructions(target):
        if instruction == "ENV":
            env.update(item.partition("=")[::2] for item in shlex.split(args))
    return env


def container_environment(
    service: Mapping[str, Any],
    target: str,
    paths: Mapping[str, Path],
    home: Path,
    env_file: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A container's environment as Docker builds it: the image's ENV, then ``env_file`` (what .env holds), then
    the service's environment, each later one winning; every value under a key of ``paths`` (container paths:
    "/app", the mount points) moved to the folder that stands in for it; PATH from here, HOME ``home``."""

    def mapped(value: str) -> str:
        for container_path, folder in paths.items():
            if value == container_path or value.startswith(container_path.rstrip("/") + "/"):
                return str(folder) + value[len(container_path) :]
        return value

    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    layers = {**image_environment(target), **(env_file or {}), **environment(service)}
    env.update({k: mapped(v) for k, v in layers.items()})
    return env
