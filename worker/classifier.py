"""The served classifier: loaded once, kept for every job, and swapped for a new version without a restart.

:class:`ModelService` holds the active :class:`~newsmodel.prediction.Classifier`. A background thread
(:meth:`ModelService.start_watching`) polls ``MODEL_DIR/current`` every MODEL_POLL_INTERVAL_S; when it
names another version, that thread loads it (and runs one prediction as a smoke test) while the current
model keeps serving, then swaps it in between two batches (the swap waits for the batch in hand). A model
that fails to load is never swapped in: the previous one keeps serving, the reason is logged and published
as ``last_error`` in the worker's serving hash (``newsbot:serving:<worker name>``), and the load is tried
again after a while (a folder may still have been in the making).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from redis import Redis
from redis.exceptions import RedisError

from common import metrics, state
from common.articles import Article
from common.exceptions import ModelNotFoundError, NewsbotError
from common.settings import Settings
from common.state import ServingState
from newsmodel.bert import BertClassifier, gpu_batch_size
from newsmodel.loading import load_classifier
from newsmodel.prediction import Classifier, Prediction
from newsmodel.registry import resolve_serving_path

log = logging.getLogger(__name__)

# A version that failed to load is tried again after this long (or when `current` names another one).
RETRY_FAILED_LOAD_S = 60.0
_SMOKE_TEST = Article(title="テスト", body="これは読み込み確認のための短い文章です。")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and taskset restrict)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def use_all_cores() -> int:
    """Let torch use every core this process may run on.

    torch sizes its intra-op pool from the machine, not from the CPU affinity or cgroup quota a
    container grants, and some launchers leave it at one thread; set it explicitly once at start.
    The setting is per thread for OpenMP, so the model-loading thread calls this too.
    """
    cores = usable_cores()
    torch.set_num_threads(max(1, cores))
    return cores


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ModelService:
    """Holds the active classifier; ``predict`` raises ModelNotFoundError while there is none."""

    def __init__(
        self,
        model_dir: Path,
        model_path: Path | None,
        device: str | None = None,
        *,
        max_length: int = 512,
        truncation: str = "head",
        batch_size: int = 32,
        poll_interval_s: float = 5.0,
    ) -> None:
        self.model_dir = model_dir
        self.model_path = model_path
        self.device = device
        self.max_length = max_length
        self.truncation = truncation
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.batches = 0  # predict calls: one per batch of jobs
        self.loaded_at: str | None = None
        self.last_error: str | None = None
        self._classifier: Classifier | None = None
        self._failed: dict[str, float] = {}  # version -> monotonic time of its failed load
        self._serve_lock = threading.Lock()  # held for a whole batch; a swap waits for it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelService:
        return cls(
            settings.model_dir,
            settings.model_path,
            settings.inference_device,
            max_length=settings.max_length,
            truncation=settings.truncation,
            batch_size=settings.classify_batch_size,
            poll_interval_s=settings.model_poll_interval_s,
        )

    # -- what is served ----------------------------------------------------------------------------
    @property
    def version(self) -> str | None:
        classifier = self._classifier
        return classifier.version if classifier else None

    @property
    def path(self) -> Path | None:
        classifier = self._classifier
        return classifier.path if classifier else None

    @property
    def device_name(self) -> str:
        classifier = self._classifier
        if isinstance(classifier, BertClassifier):
            return str(classifier.device)
        return self.device or ("cuda" if torch.cuda.is_available() else "cpu")

    def serving_state(self, worker_name: str) -> ServingState:
        return ServingState(
            worker=worker_name,
            version=self.version or "",
            path=str(self.path or ""),
            loaded_at=self.loaded_at or "",
            last_error=self.last_error or "",
            device=self.device_name,
        )

    # -- loading -----------------------------------------------------------------------------------
    def _configure(self, classifier: Classifier) -> Classifier:
        """Apply the serving settings to a freshly loaded classifier (load_classifier takes only the device)."""
        if isinstance(classifier, BertClassifier):
            classifier.max_length = self.max_length
            classifier.truncation = "head_tail" if self.truncation == "head_tail" else "head"
            if classifier.device.type == "cuda":
                classifier.batch_size = gpu_batch_size(classifier.device, self.max_length)
                classifier.start_tokenizer_pool(max(1, usable_cores() - 1))
            else:
                classifier.batch_size = self.batch_size
        return classifier

    def _load(self) -> Classifier:
        """Load and smoke-test the model MODEL_PATH or MODEL_DIR/current names; raise NewsbotError if unusable."""
        path, version = resolve_serving_path(self.model_dir, self.model_path)
        classifier = self._configure(load_classifier(path, version, device=self.device))
        try:
            (prediction,) = classifier.predict([_SMOKE_TEST])
            if not all(0.0 <= p <= 1.0 for p in prediction.scores.values()):
                raise ValueError(f"probabilities out of range: {prediction.scores}")
        except Exception as exc:
            _close(classifier)
            raise NewsbotError(f"{path}: the model loads but cannot predict: {exc}") from exc
        return classifier

    def load(self) -> bool:
        """Load what is current now, in this thread (at start). False, and keep what is served, on failure."""
        try:
            classifier = self._load()
        except NewsbotError as exc:
            self.last_error = str(exc)
            log.warning("no new model loaded: %s", exc)
            return False
        self._swap(classifier)
        return True

    def _swap(self, classifier: Classifier) -> None:
        with self._serve_lock:  # waits for the batch in hand
            old, self._classifier = self._classifier, classifier
            self.loaded_at = _now_iso()
            self.last_error = None
        log.info("serving model %s from %s (was %s)", classifier.version, classifier.path, old and old.version)
        metrics.set_model_served(classifier.version, "bert" if isinstance(classifier, BertClassifier) else "linear")
        if old is not None:
            _close(old)
            del old
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def wanted_version(self) -> str | None:
        """The version that should be served now (MODEL_PATH's folder name, or what ``current`` names)."""
        try:
            return resolve_serving_path(self.model_dir, self.model_path)[1]
        except ModelNotFoundError:
            return None

    def check_for_update(self) -> bool:
        """Load and swap in the current version if it is not the one served. True when a new one was swapped in."""
        wanted = self.wanted_version()
        if wanted is None or wanted == self.version:
            return False
        failed_at = self._failed.get(wanted)
        if failed_at is not None and time.monotonic() - failed_at < max(RETRY_FAILED_LOAD_S, self.poll_interval_s):
            return False
        log.info("model %s is current; loading it while %s keeps serving", wanted, self.version)
        try:
            classifier = self._load()
        except Exception as exc:  # noqa: BLE001 - a broken model must never stop the worker, whatever it raises
            self._failed[wanted] = time.monotonic()
            self.last_error = f"{wanted}: {exc}"
            log.error("model %s not swapped in (still serving %s): %s", wanted, self.version, exc)
            return False
        self._failed.pop(wanted, None)
        self._swap(classifier)
        return True

    # -- the watcher thread ------------------------------------------------------------------------
    def publish(self, connection: Redis, worker_name: str) -> None:
        """Publish the serving state (``newsbot:serving:<worker name>``), kept a few poll intervals."""
        state.publish_serving_state(connection, self.serving_state(worker_name), self.poll_interval_s)

    def start_watching(self, connection: Redis, worker_name: str) -> None:
        """Poll for new versions and publish the serving state in a daemon thread until :meth:`stop`."""

        def loop() -> None:
            use_all_cores()
            while not self._stop.is_set():
                try:
                    if self.model_path is None:
                        self.check_for_update()
                    self.publish(connection, worker_name)
                except RedisError as exc:
                    log.warning("cannot publish the serving state: %s", exc)
                except Exception:  # the watcher outlives any single failure
                    log.exception("model watcher iteration failed")
                self._stop.wait(self.poll_interval_s)
            with contextlib.suppress(RedisError):
                state.clear_serving_state(connection, worker_name)

        self._thread = threading.Thread(target=loop, name="model-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- serving -----------------------------------------------------------------------------------
    def predict(self, articles: Sequence[Article]) -> tuple[list[Prediction], str]:
        """Predictions for ``articles`` (one batch) and the version of the model that made them."""
        with self._serve_lock:
            classifier = self._classifier
            if classifier is None:
                raise ModelNotFoundError("no model loaded")
            predictions = classifier.predict(articles)
            self.batches += 1
            return predictions, classifier.version


def _close(classifier: Any) -> None:
    close = getattr(classifier, "close", None)
    if callable(close):
        close()
