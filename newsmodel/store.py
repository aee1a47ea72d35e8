"""The model registry on an object store (``s3://bucket/prefix``, through fsspec and s3fs).

Layout under the prefix (the same names as in a local MODEL_DIR, plus one marker per version)::

    <prefix>/<version>/<file>…              the version's files, uploaded first
    <prefix>/<version>/.complete.json       the completion marker, written last (manifest, type, metrics)
                                            ``files``: {name: size}; ``sha256``: {name: hex digest}
    <prefix>/current                        the current version's name: one small object, replaced by one PUT
    <prefix>/history.jsonl                  the switches of ``current``, appended by read-modify-write

A version exists only once its marker does: a half-uploaded version (a crashed or running upload) is never
listed, promoted or downloaded. Object stores have no rename, so the marker is what makes an upload atomic.
Appending to the history reads the object and writes it back whole: two admin operations at the same instant
could lose one line (never ``current`` itself); admin operations are rare, so this is accepted.

Workers serve from a local cache (MODEL_CACHE_DIR): :func:`download` copies a complete version into
``<cache>/<version>`` through a hidden folder renamed when every file is there with the size and the sha256 the
marker lists, so a cached folder is always whole and is what was uploaded. A file whose bytes differ (even at
the same size) refuses the whole version with :class:`ModelIntegrityError`; nothing of it reaches the cache.

Markers written before the sha256 were recorded (no ``sha256`` key) are still accepted, on their sizes alone,
with one warning per download naming the version: refusing them would stop every existing deployment from
serving (or rolling back to) the versions it already has. Registering a version again is the way to give it
sha256s. A marker that has a ``sha256`` key must list a well-formed digest for every file, or the version is
refused. The sizes stay in ``files`` as before, so a worker of an older release still reads a new marker.
Nothing here imports torch or transformers.

The S3 endpoint comes from :func:`configure` (MODEL_STORE_ENDPOINT_URL, for MinIO or another S3-compatible
server); credentials and region from the standard AWS environment variables or files, read by botocore.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.exceptions import InvalidModelError, ModelNotFoundError

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


class ModelIntegrityError(InvalidModelError):
    """A downloaded version is not what was uploaded: a file's sha256 (or size) differs from its marker's."""


def shown(text: str, most: int = 160) -> str:
    """``text`` quoted on one line (repr escapes newlines and control characters), cut to ``most`` characters:
    for names read from the registry (``current``, a marker) in a log line or an error."""
    return repr(text[:most]) + ("…" if len(text) > most else "")


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


MARKER_FILE = ".complete.json"
DEFAULT_CACHE_DIR = Path(".cache/models")
_DOWNLOAD_PREFIX = ".download-"
# Versions a local cache keeps (the most recently used): the one served, the one before it, one more.
DEFAULT_CACHE_KEEP = 3


@dataclass(frozen=True)
class StoreConfig:
    """Process-wide object-store settings, set once at start from the Settings (:func:`configure`)."""

    endpoint_url: str | None = None
    cache_dir: Path = DEFAULT_CACHE_DIR
    cache_keep: int = DEFAULT_CACHE_KEEP


_config = StoreConfig()


def configure(endpoint_url: str | None = None, cache_dir: Path | None = None, cache_keep: int | None = None) -> None:
    """Set the S3 endpoint (None: AWS), the default local cache of downloaded versions for this process, and how
    many versions it keeps."""
    global _config
    _config = StoreConfig(
        endpoint_url=endpoint_url or None,
        cache_dir=cache_dir or DEFAULT_CACHE_DIR,
        cache_keep=cache_keep or DEFAULT_CACHE_KEEP,
    )


def config() -> StoreConfig:
    return _config


def is_remote(model_dir: str | os.PathLike[str]) -> bool:
    """True when ``model_dir`` is an object-store URL (``s3://…``, or any fsspec URL but ``file://``)."""
    text = os.fspath(model_dir)
    return "://" in text and not text.startswith("file://")


class Store:
    """One registry on an object store: its file system and the key prefix (no trailing slash)."""

    def __init__(self, url: str) -> None:
        import fsspec

        self.url = url.rstrip("/")
        protocol = self.url.split("://", 1)[0]
        options: dict[str, Any] = {}
        if protocol in ("s3", "s3a"):
            # Listings must not be cached: a polling worker has to see a version uploaded by another machine.
            options["use_listings_cache"] = False
            if _config.endpoint_url:
                options["endpoint_url"] = _config.endpoint_url
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **options)
        self.root = str(self.root).rstrip("/")

    def key(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def url_of(self, *parts: str) -> str:
        return "/".join([self.url, *parts])

    # -- small objects -------------------------------------------------------------------------------
    def read_text(self, *parts: str) -> str | None:
        """The object's text, or None when it does not exist."""
        try:
            data: bytes = self.fs.cat_file(self.key(*parts))
        except FileNotFoundError:
            return None
        return data.decode("utf-8")

    def write_text(self, text: str, *parts: str) -> None:
        """Write one object with one PUT: readers see the old or the new content, never a mix."""
        self.fs.pipe_file(self.key(*parts), text.encode("utf-8"))

    # -- versions ------------------------------------------------------------------------------------
    def marker(self, version: str) -> dict[str, Any] | None:
        """The completion marker of ``version``, or None while it is absent (no version, or a half upload)."""
        text = self.read_text(version, MARKER_FILE)
        if text is None:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def names(self) -> list[str]:
        """The names of the folders under the prefix (complete versions or not), sorted."""
        try:
            entries = self.fs.ls(self.root, detail=True)
        except FileNotFoundError:
            return []
        return sorted(
            str(entry["name"]).rstrip("/").rsplit("/", 1)[-1] for entry in entries if entry.get("type") == "directory"
        )

    def upload(self, local: Path, version: str, marker: dict[str, Any]) -> None:
        """Upload every file of ``local`` under ``<prefix>/<version>/``, then the marker (with the file list, each
        file's size and sha256)."""
        if self.marker(version) is not None:
            raise FileExistsError(f"{self.url_of(version)} already exists")
        files = {p.relative_to(local).as_posix(): p.stat().st_size for p in sorted(local.rglob("*")) if p.is_file()}
        files.pop(MARKER_FILE, None)
        sha256 = {name: sha256_of(local / name) for name in files}
        try:
            for name in files:
                self.fs.put_file(str(local / name), self.key(version, name))
            complete = {**marker, "files": files, "sha256": sha256}
            self.write_text(json.dumps(complete, ensure_ascii=False, indent=2), version, MARKER_FILE)
        except BaseException:
            self.remove_partial(version)
            raise

    def remove_partial(self, version: str) -> None:
        """Best effort: delete what a failed upload left (without a marker it is invisible anyway)."""
        with contextlib.suppress(OSError, ValueError):
            self.fs.rm(self.key(version), recursive=True)

    def download(self, version: str, cache_dir: Path) -> Path:
        """``<cache_dir>/<version>``, downloaded first when absent; only a complete version is downloaded."""
        target = cache_dir / version
        if target.is_dir():
            os.utime(target)  # used now: the last to be evicted
            return target
        marker = self.marker(version)
        if marker is None:
            raise ModelNotFoundError(f"no complete model version {version!r} in {self.url} (no {MARKER_FILE})")
        files = marker.get("files")
        if not isinstance(files, dict) or not files:
            raise ModelNotFoundError(f"{self.url_of(version, MARKER_FILE)} lists no files")
        digests = self._digests(version, marker, files)
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = cache_dir / f"{_DOWNLOAD_PREFIX}{version}-{os.getpid()}-{secrets.token_hex(3)}"
        try:
            for name, size in files.items():
                out = (partial / name).resolve()
                if not out.is_relative_to(partial.resolve()):
                    raise ModelNotFoundError(f"{self.url_of(version, MARKER_FILE)}: bad file name {name!r}")
                out.parent.mkdir(parents=True, exist_ok=True)
                self.fs.get_file(self.key(version, name), str(out))
                if (got := out.stat().st_size) != size:
                    raise ModelIntegrityError(
                        f"{self.url_of(version)}: {shown(name)} has {got} bytes, not {size}: version refused"
                    )
                if digests is not None and (actual := sha256_of(out)) != digests[name]:
                    raise ModelIntegrityError(
                        f"{self.url_of(version)}: {shown(name)} has sha256 {actual}, not {digests[name]} as its "
                        f"{MARKER_FILE} records (altered after upload): version refused"
                    )
            (partial / MARKER_FILE).write_text(json.dumps(marker, ensure_ascii=False, indent=2), encoding="utf-8")
            try:
                os.rename(partial, target)
            except OSError:
                if not target.is_dir():  # another worker sharing this cache finished the same download first
                    raise
        except FileNotFoundError as exc:
            raise ModelNotFoundError(f"{self.url_of(version)}: a file is missing ({exc})") from exc
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        note_cached(target)
        return target

    def _digests(self, version: str, marker: dict[str, Any], files: dict[str, Any]) -> dict[str, str] | None:
        """The sha256 the marker records for each file; None for a marker written before they were recorded
        (accepted on sizes alone, with a warning). A ``sha256`` entry that misses a file or is malformed refuses
        the version."""
        digests = marker.get("sha256")
        if digests is None:
            log.warning(
                "model %s: its %s records no sha256 (uploaded before they were recorded); checking file sizes only",
                version,
                MARKER_FILE,
            )
            return None
        where = self.url_of(version, MARKER_FILE)
        if not isinstance(digests, dict):
            raise ModelIntegrityError(f"{where}: sha256 is not a mapping of file names: version refused")
        for name in files:
            digest = digests.get(name)
            if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
                raise ModelIntegrityError(f"{where}: no valid sha256 for {shown(str(name))}: version refused")
        return {str(name): str(digests[name]) for name in files}


def note_cached(version_dir: Path) -> None:
    """A version just added to a local cache (downloaded, or trained and uploaded here): it becomes the most
    recently used, and the cache drops the versions beyond MODEL_CACHE_KEEP."""
    os.utime(version_dir)
    evict(version_dir.parent, config().cache_keep, protect={version_dir.name})


def evict(cache_dir: Path, keep: int, protect: Collection[str] = ()) -> list[str]:
    """Delete the cached versions beyond the ``keep`` most recently used (folder mtime, renewed on each use), never
    one in ``protect`` nor a hidden folder (a download or a training in progress); the names deleted.

    A worker that still serves an evicted version is unaffected: its model is in memory (and a memory-mapped
    weights file lives on until it is unmapped); a rollback to it downloads it again.
    """
    try:
        cached = [p for p in cache_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except FileNotFoundError:
        return []
    cached.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    removed = []
    for path in cached[max(keep, 1) :]:
        if path.name in protect:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path.name)
    if removed:
        log.info("model cache %s: removed %s (keeping the %d most recently used)", cache_dir, removed, keep)
    return removed
