"""The model registry in MODEL_DIR: one folder per version, and a ``current`` file naming the active one.

MODEL_DIR is a local folder (a volume shared by several machines works as one) or an object-store URL
(``s3://bucket/prefix``, see :mod:`newsmodel.store`); every function here takes either.

In a local folder, ``current`` is switched atomically (write a temporary file, then ``os.replace``), so a
reader never sees a half-written name. A version folder appears under its name only once fully written:
training writes into a hidden staging folder in MODEL_DIR and renames it (:func:`staging_dir`,
:func:`register`). On an object store, training writes into a local staging folder, :func:`register` uploads
it and writes its completion marker last; ``current`` is one object replaced by one PUT.
Every switch made by :func:`promote` or :func:`rollback` is appended to ``history.jsonl``.

``current`` may only name a version inside MODEL_DIR (:func:`version_dir`): a plain name (one path component,
no separator, not hidden, see :data:`PLAIN_NAME`) whose folder, and every symlink within it, resolves inside
MODEL_DIR. A pointer such as ``../elsewhere/x``, ``/abs/path`` or a version folder that is a symlink out of
MODEL_DIR is refused when read (:func:`resolve_serving_path`, :func:`local_version`: the worker keeps what it
serves) and when written (:func:`set_current`, :func:`promote`, :func:`rollback`).

Workers serve from local folders: :func:`local_version` (and :func:`resolve_serving_path`) download a version
from an object store into the local cache (MODEL_CACHE_DIR) first.
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
from common.kinds import model_kind
from common.labels import LabelSet
from newsmodel.loading import ModelType, model_type_of, read_model_labels
from newsmodel.store import Store, config, is_remote, note_cached, shown

# MODEL_DIR: a local folder, or an object-store URL such as s3://bucket/prefix.
ModelDir = str | os.PathLike[str]

CURRENT_FILE = "current"
HISTORY_FILE = "history.jsonl"
METRICS_FILE = "metrics.json"
# Written last into every version folder this package trains: what kind of model it is, when, on what split.
INFO_FILE = "training.json"
# A version name: sortable UTC timestamp + milliseconds and a short id (20261129-123456-789a1b2c3).
VERSION_PATTERN = re.compile(r"^\d{8}-\d{6}-[0-9a-z]+\Z")  # \Z: no trailing newline either
_STAGING_PREFIX = ".staging-"
# What ``current`` may name: one path component of letters, digits, ``.``, ``_`` and ``-``, not starting with a
# dot (so never ``.``, ``..``, a staging folder or a hidden file) and with no separator. Looser than
# VERSION_PATTERN on purpose: a local registry has always served any folder name ``current`` named.
PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$")


class UnsafeVersionError(ModelNotFoundError):
    """``current`` (or a promote/rollback) names something that is not a version inside MODEL_DIR."""


def _local(model_dir: ModelDir) -> Path:
    return Path(model_dir)


def is_plain_name(name: str) -> bool:
    """True when ``name`` can only name an entry directly inside MODEL_DIR (see :data:`PLAIN_NAME`)."""
    return PLAIN_NAME.fullmatch(name) is not None


def _escapes(path: Path, root: Path) -> bool:
    """True when ``path`` (resolved, symlinks followed) lies outside ``root`` (resolved)."""
    return not path.resolve().is_relative_to(root)


def version_dir(model_dir: ModelDir, version: str) -> Path:
    """The folder of ``version`` in the local registry ``model_dir``, checked to lie inside it.

    Raises :class:`UnsafeVersionError` when ``version`` is not a plain name, or its folder or any symlink in it
    resolves outside MODEL_DIR (a symlink to another place inside MODEL_DIR is fine); :class:`ModelNotFoundError`
    when there is no such folder."""
    if not is_plain_name(version):
        raise UnsafeVersionError(f"{model_dir}: {shown(version)} is not a plain version name inside MODEL_DIR")
    root = _local(model_dir).resolve()
    path = _local(model_dir) / version
    if not path.is_dir():
        raise ModelNotFoundError(f"no model version {shown(version)} in {model_dir}")
    if _escapes(path, root):
        raise UnsafeVersionError(f"{model_dir}/{version} resolves to {shown(str(path.resolve()))}, outside MODEL_DIR")
    for folder, dirs, files in os.walk(path):  # symlinks are not followed, only checked
        for name in (*dirs, *files):
            entry = Path(folder) / name
            if entry.is_symlink() and _escapes(entry, root):
                raise UnsafeVersionError(
                    f"{shown(str(entry))} is a symlink to {shown(str(entry.resolve()))}, outside MODEL_DIR"
                )
    return path


def current_version(model_dir: ModelDir) -> str | None:
    """The version that ``model_dir/current`` names, or None when nothing is current yet."""
    if is_remote(model_dir):
        name = Store(os.fspath(model_dir)).read_text(CURRENT_FILE) or ""
    else:
        try:
            name = (_local(model_dir) / CURRENT_FILE).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
    return name.strip() or None


def has_version(model_dir: ModelDir, version: str) -> bool:
    """True when ``version`` is a complete version of the registry (a folder, or an upload with its marker)."""
    if not VERSION_PATTERN.match(version):
        return False
    if is_remote(model_dir):
        return Store(os.fspath(model_dir)).marker(version) is not None
    try:
        version_dir(model_dir, version)
    except ModelNotFoundError:
        return False
    return True


def set_current(model_dir: ModelDir, version: str) -> None:
    """Make ``version`` current, atomically (a rename locally; one PUT on an object store). Only a version inside
    MODEL_DIR (:func:`version_dir`) is ever written: anything else raises :class:`ModelNotFoundError`."""
    if is_remote(model_dir):
        if not is_plain_name(version):
            raise UnsafeVersionError(f"{model_dir}: {shown(version)} is not a plain version name")
        store = Store(os.fspath(model_dir))
        if store.marker(version) is None:
            raise ModelNotFoundError(f"no complete model version {version!r} in {model_dir}")
        store.write_text(version + "\n", CURRENT_FILE)
        return
    root = _local(model_dir)
    version_dir(model_dir, version)
    tmp = root / f".{CURRENT_FILE}.{os.getpid()}.tmp"
    tmp.write_text(version + "\n", encoding="utf-8")
    os.replace(tmp, root / CURRENT_FILE)


def local_version(model_dir: ModelDir, version: str, cache_dir: Path | None = None) -> Path:
    """A local folder holding ``version``: its folder in a local registry, or its copy in the cache
    (``cache_dir``, default MODEL_CACHE_DIR), downloaded first from an object store when not there yet (and
    checked against the sha256 its marker records). Raises :class:`ModelNotFoundError` (its subclass
    :class:`UnsafeVersionError` for a name or folder outside MODEL_DIR) or
    :class:`~newsmodel.store.ModelIntegrityError`."""
    if is_remote(model_dir):
        if not VERSION_PATTERN.match(version):
            raise ModelNotFoundError(f"no model version {shown(version)} in {model_dir}")
        return Store(os.fspath(model_dir)).download(version, cache_dir or config().cache_dir)
    return version_dir(model_dir, version)


def resolve_serving_path(
    model_dir: ModelDir, model_path: Path | None, cache_dir: Path | None = None
) -> tuple[Path, str]:
    """The folder to serve and its version name: MODEL_PATH when set, else MODEL_DIR/<current> (downloaded
    into ``cache_dir`` first when MODEL_DIR is on an object store)."""
    if model_path is not None:
        if not model_path.is_dir():
            raise ModelNotFoundError(f"MODEL_PATH {model_path} is not a folder")
        return model_path, model_path.resolve().name
    version = current_version(model_dir)
    if version is None:
        raise ModelNotFoundError(f"no current model in {model_dir} (nothing trained yet)")
    try:
        return local_version(model_dir, version, cache_dir), version
    except UnsafeVersionError as exc:
        raise UnsafeVersionError(f"{model_dir}/current refused: {exc}") from exc


@dataclass(frozen=True)
class VersionInfo:
    version: str
    path: str  # the version's folder, or its URL on an object store
    created_at: datetime
    model_type: ModelType
    metrics: dict[str, Any] | None
    is_current: bool
    labels: LabelSet | None = None  # the model's labels and display names; None when unreadable

    @property
    def label_count(self) -> int | None:
        """How many labels the version has (its label set, else its metrics), or None when neither says."""
        if self.labels is not None:
            return len(self.labels)
        if not self.metrics:
            return None
        labels = self.metrics.get("labels") or self.metrics.get("per_class")
        return len(labels) if isinstance(labels, list | dict) else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "path": self.path,
            "created_at": self.created_at.isoformat(),
            "model_type": self.model_type,
            "label_count": self.label_count,
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


def version_metrics(model_dir: ModelDir, version: str) -> dict[str, Any] | None:
    """The test metrics of a registered version (no download from an object store: read from its marker)."""
    if is_remote(model_dir):
        marker = Store(os.fspath(model_dir)).marker(version) or {}
        metrics = marker.get("metrics")
        return metrics if isinstance(metrics, dict) else None
    return read_metrics(_local(model_dir) / version)


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


def _parse_created(stamp: Any, name: str) -> datetime | None:
    if isinstance(stamp, str):
        try:
            return datetime.fromisoformat(stamp)
        except ValueError:
            pass
    try:
        return datetime.strptime(name[:15], "%Y%m%d-%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _created_at(path: Path) -> datetime:
    return _parse_created(read_info(path).get("created_at"), path.name) or datetime.fromtimestamp(
        path.stat().st_mtime, UTC
    )


def _marker_of(path: Path, version: str) -> dict[str, Any]:
    """What an object store keeps about a version in its completion marker (read by :func:`list_versions`)."""
    return {
        "version": version,
        "model_type": model_type_of(path),
        "created_at": (_parse_created(read_info(path).get("created_at"), version) or datetime.now(UTC)).isoformat(),
        "metrics": read_metrics(path),
    }


def list_versions(model_dir: ModelDir) -> list[VersionInfo]:
    """Every registered version in ``model_dir``, oldest first (other folders, staging ones and half uploads
    included, are ignored)."""
    if is_remote(model_dir):
        return _list_remote(Store(os.fspath(model_dir)))
    root = _local(model_dir)
    if not root.is_dir():
        return []
    current = current_version(root)
    versions = []
    for path in sorted(root.iterdir()):
        if not path.is_dir() or not VERSION_PATTERN.match(path.name) or not has_version(root, path.name):
            continue  # not a version folder, or one that leads out of MODEL_DIR
        versions.append(
            VersionInfo(
                version=path.name,
                path=str(path),
                created_at=_created_at(path),
                model_type=model_type_of(path),
                metrics=read_metrics(path),
                is_current=path.name == current,
                labels=labels_of(path),
            )
        )
    return versions


def _list_remote(store: Store) -> list[VersionInfo]:
    current = current_version(store.url)
    versions = []
    for name in store.names():
        marker = store.marker(name) if VERSION_PATTERN.match(name) else None
        if marker is None:
            continue
        kind = marker.get("model_type")
        metrics = marker.get("metrics")
        versions.append(
            VersionInfo(
                version=name,
                path=store.url_of(name),
                created_at=_parse_created(marker.get("created_at"), name) or datetime.fromtimestamp(0, UTC),
                model_type=(model_kind(kind) if isinstance(kind, str) else None) or "unknown",
                metrics=metrics if isinstance(metrics, dict) else None,
                is_current=name == current,
                labels=_labels_in(metrics),
            )
        )
    return versions


def _labels_in(metrics: Any) -> LabelSet | None:
    """The label set a version's metrics name (ids in order, no display names), or None."""
    labels = metrics.get("labels") if isinstance(metrics, dict) else None
    try:
        return LabelSet(tuple(str(label) for label in labels)) if isinstance(labels, list) else None
    except (NewsbotError, ValueError):
        return None


def staging_dir(model_dir: ModelDir, version: str) -> Path:
    """A fresh hidden folder to write a version into before :func:`register`: in ``model_dir`` when local
    (renamed there), in the local cache (MODEL_CACHE_DIR) when ``model_dir`` is on an object store (uploaded)."""
    root = config().cache_dir if is_remote(model_dir) else _local(model_dir)
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{_STAGING_PREFIX}{version}"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir()
    return path


def register(model_dir: ModelDir, staging: Path, version: str) -> Path:
    """Give a fully written staging folder its version name, and return the version's local folder.

    Locally an atomic rename in the same file system. On an object store: upload every file, then the
    completion marker; the staging folder then becomes the version's copy in the local cache."""
    if not VERSION_PATTERN.match(version):
        raise ValueError(f"not a version name: {version!r}")
    if is_remote(model_dir):
        Store(os.fspath(model_dir)).upload(staging, version, _marker_of(staging, version))
        target = staging.parent / version
        if target.exists():
            shutil.rmtree(target)
        os.rename(staging, target)
        note_cached(target)
        return target
    target = _local(model_dir) / version
    if target.exists():
        raise FileExistsError(f"{target} already exists")
    os.rename(staging, target)
    return target


def discard(staging: Path) -> None:
    """Remove a staging folder left by a failed training."""
    if staging.name.startswith(_STAGING_PREFIX):
        shutil.rmtree(staging, ignore_errors=True)


def _record(model_dir: ModelDir, action: str, version: str, previous: str | None) -> None:
    line = json.dumps({"at": datetime.now(UTC).isoformat(), "action": action, "version": version, "previous": previous})
    if is_remote(model_dir):
        # Read-modify-write: admin operations are rare; two at the same instant could lose one history line.
        store = Store(os.fspath(model_dir))
        store.write_text((store.read_text(HISTORY_FILE) or "") + line + "\n", HISTORY_FILE)
        return
    with (_local(model_dir) / HISTORY_FILE).open("a", encoding="utf-8") as out:
        out.write(line + "\n")


def read_history(model_dir: ModelDir) -> list[dict[str, Any]]:
    """The switches of ``current``, oldest first."""
    if is_remote(model_dir):
        lines = (Store(os.fspath(model_dir)).read_text(HISTORY_FILE) or "").splitlines()
    else:
        try:
            lines = (_local(model_dir) / HISTORY_FILE).read_text(encoding="utf-8").splitlines()
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


def _require_version(model_dir: ModelDir, version: str) -> None:
    if not is_remote(model_dir) and VERSION_PATTERN.match(version):
        version_dir(model_dir, version)  # raises with the reason (no folder, or one leading out of MODEL_DIR)
    if not has_version(model_dir, version):
        raise ModelNotFoundError(f"no model version {version!r} in {model_dir}")


def promote(model_dir: ModelDir, version: str) -> None:
    """Make ``version`` current (atomically) and record the switch."""
    _require_version(model_dir, version)
    previous = current_version(model_dir)
    set_current(model_dir, version)
    _record(model_dir, "promote", version, previous)


def rollback(model_dir: ModelDir, version: str | None = None) -> str:
    """Make ``version`` current again; without one, the version that was current before the current one.

    Without a recorded switch, the newest version older than the current one is taken. Returns the version
    now current. Raises :class:`ModelNotFoundError` when there is nothing to go back to.
    """
    current = current_version(model_dir)
    if version is None:
        for row in reversed(read_history(model_dir)):
            previous = row.get("previous")
            ok = isinstance(previous, str) and previous != current and has_version(model_dir, previous)
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
