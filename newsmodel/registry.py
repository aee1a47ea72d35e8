"""The model registry in MODEL_DIR: one folder per version, and a ``current`` file naming the active one.

``current`` is switched atomically (write a temporary file, then ``os.replace``), so a reader never
sees a half-written name. A version folder appears under its name only once fully written: training
writes into a hidden staging folder in MODEL_DIR and renames it (:func:`staging_dir`, :func:`register`).
Every switch made by :func:`promote` or :func:`rollback` is appended to ``history.jsonl``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.exceptions import ModelNotFoundError, NewsbotError
from common.labels import LabelSet
from newsmodel.loading import ModelType, model_type_of, read_model_labels

CURRENT_FILE = "current"
HISTORY_FILE = "history.jsonl"
METRICS_FILE = "metrics.json"
# Written last into every version folder this package trains: what kind of model it is, when, on what split.
INFO_FILE = "training.json"
# A version name: sortable UTC timestamp + milliseconds and a short id (20261129-123456-789a1b2c3).
VERSION_PATTERN = re.compile(r"^\d{8}-\d{6}-[0-9a-z]+$")
_STAGING_PREFIX = ".staging-"


def current_version(model_dir: Path) -> str | None:
    """The version that ``model_dir/current`` names, or None when nothing is current yet."""
    try:
        name = (model_dir / CURRENT_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return name or None


def set_current(model_dir: Path, version: str) -> None:
    """Make ``version`` current, atomically."""
    if not (model_dir / version).is_dir():
        raise ModelNotFoundError(f"no model version {version!r} in {model_dir}")
    tmp = model_dir / f".{CURRENT_FILE}.{os.getpid()}.tmp"
    tmp.write_text(version + "\n", encoding="utf-8")
    os.replace(tmp, model_dir / CURRENT_FILE)


def resolve_serving_path(model_dir: Path, model_path: Path | None) -> tuple[Path, str]:
    """The folder to serve and its version name: MODEL_PATH when set, else MODEL_DIR/<current>."""
    if model_path is not None:
        if not model_path.is_dir():
            raise ModelNotFoundError(f"MODEL_PATH {model_path} is not a folder")
        return model_path, model_path.resolve().name
    version = current_version(model_dir)
    if version is None:
        raise ModelNotFoundError(f"no current model in {model_dir} (nothing trained yet)")
    path = model_dir / version
    if not path.is_dir():
        raise ModelNotFoundError(f"{model_dir}/current names {version!r}, which is not a folder")
    return path, version


@dataclass(frozen=True)
class VersionInfo:
    version: str
    path: Path
    created_at: datetime
    model_type: ModelType
    metrics: dict[str, Any] | None
    is_current: bool
    labels: LabelSet | None = None  # the model's labels and display names; None when unreadable

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "path": str(self.path),
            "created_at": self.created_at.isoformat(),
            "model_type": self.model_type,
            "label_count": None if self.labels is None else len(self.labels),
            "labels": None if self.labels is None else list(self.labels),
            "metrics": self.metrics,
            "is_current": self.is_current,
        }


def new_version_name(now: datetime | None = None) -> str:
    """A new version name that sorts in creation order: UTC ``YYYYMMDD-HHMMSS-`` then the milliseconds (3
    digits) and 6 random hex digits, so two versions made within the same second still sort right."""
    moment = now or datetime.now(UTC)
    return f"{moment.strftime('%Y%m%d-%H%M%S')}-{moment.microsecond // 1000:03d}{secrets.token_hex(3)}"


def read_metrics(path: Path) -> dict[str, Any] | None:
    """The ``metrics.json`` of a version folder, or None when it has none (or it is unreadable)."""
    try:
        data = json.loads((path / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_info(path: Path) -> dict[str, Any]:
    try:
        data = json.loads((path / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def labels_of(path: Path) -> LabelSet | None:
    """The label set of the version in ``path`` (JSON files only), or None when it cannot be read."""
    try:
        return read_model_labels(path)
    except NewsbotError:
        return None


def _created_at(path: Path) -> datetime:
    stamp = read_info(path).get("created_at")
    if isinstance(stamp, str):
        try:
            return datetime.fromisoformat(stamp)
        except ValueError:
            pass
    try:
        return datetime.strptime(path.name[:15], "%Y%m%d-%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def list_versions(model_dir: Path) -> list[VersionInfo]:
    """Every registered version in ``model_dir``, oldest first (other folders, staging ones included, are ignored)."""
    if not model_dir.is_dir():
        return []
    current = current_version(model_dir)
    versions = []
    for path in sorted(model_dir.iterdir()):
        if not path.is_dir() or not VERSION_PATTERN.match(path.name):
            continue
        versions.append(
            VersionInfo(
                version=path.name,
                path=path,
                created_at=_created_at(path),
                model_type=model_type_of(path),
                metrics=read_metrics(path),
                is_current=path.name == current,
                labels=labels_of(path),
            )
        )
    return versions


def staging_dir(model_dir: Path, version: str) -> Path:
    """A fresh hidden folder in ``model_dir`` to write a version into before :func:`register` renames it."""
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / f"{_STAGING_PREFIX}{version}"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir()
    return path


def register(model_dir: Path, staging: Path, version: str) -> Path:
    """Give a fully written staging folder its version name (an atomic rename in the same file system)."""
    if not VERSION_PATTERN.match(version):
        raise ValueError(f"not a version name: {version!r}")
    target = model_dir / version
    if target.exists():
        raise FileExistsError(f"{target} already exists")
    os.rename(staging, target)
    return target


def discard(staging: Path) -> None:
    """Remove a staging folder left by a failed training."""
    if staging.name.startswith(_STAGING_PREFIX):
        shutil.rmtree(staging, ignore_errors=True)


def _record(model_dir: Path, action: str, version: str, previous: str | None) -> None:
    line = {"at": datetime.now(UTC).isoformat(), "action": action, "version": version, "previous": previous}
    with (model_dir / HISTORY_FILE).open("a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")


def read_history(model_dir: Path) -> list[dict[str, Any]]:
    """The switches of ``current``, oldest first."""
    try:
        lines = (model_dir / HISTORY_FILE).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    history = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            history.append(row)
    return history


def _require_version(model_dir: Path, version: str) -> None:
    if not VERSION_PATTERN.match(version) or not (model_dir / version).is_dir():
        raise ModelNotFoundError(f"no model version {version!r} in {model_dir}")


def promote(model_dir: Path, version: str) -> None:
    """Make ``version`` current (atomically) and record the switch."""
    _require_version(model_dir, version)
    previous = current_version(model_dir)
    set_current(model_dir, version)
    _record(model_dir, "promote", version, previous)


def rollback(model_dir: Path, version: str | None = None) -> str:
    """Make ``version`` current again; without one, the version that was current before the current one.

    Without a recorded switch, the newest version older than the current one is taken. Returns the version
    now current. Raises :class:`ModelNotFoundError` when there is nothing to go back to.
    """
    current = current_version(model_dir)
    if version is None:
        for row in reversed(read_history(model_dir)):
            previous = row.get("previous")
            ok = isinstance(previous, str) and previous != current and (model_dir / previous).is_dir()
            if row.get("version") == current and ok:
                version = str(previous)
                break
        if version is None and current is not None:
            # No recorded switch (``current`` set by hand): the newest version older than the current one.
            older = [v.version for v in list_versions(model_dir) if v.version < current]
            version = older[-1] if older else None
        if version is None:
            raise ModelNotFoundError(f"no previous model version to roll back to in {model_dir}")
    _require_version(model_dir, version)
    set_current(model_dir, version)
    _record(model_dir, "rollback", version, current)
    return version
