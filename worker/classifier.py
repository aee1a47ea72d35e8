"""The served classifier: loaded once, kept for every job, and swapped for a new version without a restart.

:class:`ModelService` holds the active :class:`~newsmodel.prediction.Classifier`. A background thread
(:meth:`ModelService.start_watching`) polls ``MODEL_DIR/current`` every MODEL_POLL_INTERVAL_S; when it
names another version, that thread loads it (and runs one prediction as a smoke test) while the current
model keeps serving, then swaps it in between two batches (the swap waits for the batch in hand). A model
that fails to load is never swapped in: the previous one keeps serving, the reason is logged and published
as ``last_error`` in the worker's serving hash (``newsbot:serving:<worker name>``), and the load is tried
again after a while (a folder may still have been in the making).

With MODEL_DIR on an object store (``s3://…``), only the small ``current`` object is polled; a new version
is first downloaded into this worker's local cache (MODEL_CACHE_DIR) and loaded from there.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from redis import Redis
from redis.exceptions import RedisError

from common.articles import Article
from common.exceptions import ModelNotFoundError, NewsbotError
from common.labels import LIVEDOOR, LabelSet
from common.settings import Settings
from newsmodel.confidence import ModelConfidence, judge, read_confidence
from newsmodel.kinds import ServedKind
from newsmodel.loading import load_served, model_type_of
from newsmodel.prediction import Classifier, Prediction, Serving
from newsmodel.registry import (
    ModelDir,
    current_version,
    is_plain_name,
    list_versions,
    read_info,
    read_metrics,
    resolve_serving_path,
)
from newsmodel.store import shown
from store import serving
from store.serving import ModelFacts, ServingState
from telemetry import metrics
from ui.reports import metric

log = logging.getLogger(__name__)

# A version that failed to load is tried again after this long (or when `current` names another one).
RETRY_FAILED_LOAD_S = 60.0
# The registry's versions are listed again (for the admins' promote select on the Home) at most this often.
VERSIONS_REFRESH_S = 60.0
# How many of the latest versions the serving state names.
PUBLISHED_VERSIONS = 10
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


@dataclass(frozen=True, slots=True)
class ServedBy:
    """The model that made a batch's predictions: its version and its labels (with their display names)."""

    version: str
    labels: LabelSet


def confidence_facts(confidence: ModelConfidence, metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The served rule for the App Home and ``/retrain status``: the bar, where it came from, and what the model's
    own bar reached on the test split (metrics.json's ``confidence``), with the ECE before and after calibration."""
    rule = confidence.rule
    facts: dict[str, Any] = {
        "calibrated": confidence.calibrated,
        "threshold": rule.threshold,
        "source": rule.source,
        "target_precision": rule.target_precision,
        "ece_before": confidence.ece_before,
        "ece_after": confidence.ece_after,
    }
    report = (metrics or {}).get("confidence")
    test = report.get("rule", {}).get("test") if isinstance(report, dict) else None
    if rule.source == "validation" and isinstance(test, dict):
        facts.update(coverage=test.get("coverage"), precision=test.get("precision"))
    return facts


def model_facts(
    path: Path,
    version: str,
    labels: LabelSet | Sequence[str] | None = None,
    confidence: ModelConfidence | None = None,
) -> ModelFacts:
    """A version folder's facts for the App Home: its type, when it was trained, its test figures (from the
    metrics.json and training.json training wrote into it; blank where a folder lacks them) and its labels with
    their display names (the served classifier's)."""
    metrics = read_metrics(path)
    info = read_info(path)
    created = info.get("created_at")
    kind = info.get("model_type")
    return ModelFacts(
        version=version,
        model_type=str(kind) if kind else model_type_of(path),
        trained_at=str(created) if isinstance(created, str) else "",
        accuracy=metric(metrics, "accuracy"),
        macro_f1=metric(metrics, "macro_f1", "f1_macro"),
        labels=tuple(labels or (metrics or {}).get("labels") or ()),
        label_names={k: dict(v) for k, v in labels.names.items()} if isinstance(labels, LabelSet) else {},
        confidence=confidence_facts(confidence, metrics) if confidence is not None else {},
    )


def _version_summary(model_type: str, metrics: dict[str, Any] | None) -> str:
    macro_f1 = metric(metrics, "macro_f1", "f1_macro")
    return model_type + ("" if macro_f1 is None else f", macro-F1 {macro_f1:.4f}")


class ModelService:
    """Holds the active classifier; ``predict`` raises ModelNotFoundError while there is none."""

    def __init__(
        self,
        model_dir: ModelDir,
        model_path: Path | None,
        device: str | None = None,
        *,
        cache_dir: Path | None = None,
        max_length: int = 512,
        truncation: str = "head",
        batch_size: int = 32,
        poll_interval_s: float = 5.0,
        gpu_memory_fraction: float = 1.0,
        confidence_threshold: float | None = None,
    ) -> None:
        self.model_dir = model_dir
        self.confidence_threshold = confidence_threshold  # CONFIDENCE_THRESHOLD: overrides each model's own bar
        self.model_path = model_path
        self.cache_dir = cache_dir
        self.device = device
        self.max_length = max_length
        self.truncation = truncation
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.gpu_memory_fraction = gpu_memory_fraction
        self.batches = 0  # predict calls: one per batch of jobs
        self.loaded_at: str | None = None
        self.last_error: str | None = None
        self._classifier: Classifier | None = None
        self._kind: ServedKind | None = None  # the served classifier's
        self._confidence = ModelConfidence()  # the served classifier's calibration and sure rule (confidence.json)
        self.facts: ModelFacts | None = None  # the served model's, read once when it is swapped in
        self._versions: tuple[tuple[str, str], ...] = ()
        self._versions_at = float("-inf")
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
            cache_dir=settings.model_cache_dir,
            max_length=settings.max_length,
            truncation=settings.truncation,
            batch_size=settings.classify_batch_size,
            poll_interval_s=settings.model_poll_interval_s,
            gpu_memory_fraction=settings.serving_gpu_memory_fraction,
            confidence_threshold=settings.confidence_threshold,
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
        classifier, kind = self._classifier, self._kind
        device = kind.device(classifier) if classifier is not None and kind is not None else None
        return device or self.device or ("cuda" if torch.cuda.is_available() else "cpu")

    def recent_versions(self) -> tuple[tuple[str, str], ...]:
        """The registry's latest versions, newest first, with a short summary each (listed once a minute)."""
        if self.model_path is not None:
            return ()  # pinned: the registry is not used
        if time.monotonic() - self._versions_at >= VERSIONS_REFRESH_S:
            try:
                found = list_versions(self.model_dir)[-PUBLISHED_VERSIONS:][::-1]
                self._versions = tuple((v.version, _version_summary(v.model_type, v.metrics)) for v in found)
            except OSError as exc:
                log.warning("cannot list the model versions: %s", exc)
            self._versions_at = time.monotonic()
        return self._versions

    def serving_state(self, worker_name: str) -> ServingState:
        facts = self.facts
        return ServingState(
            worker=worker_name,
            version=self.version or "",
            path=str(self.path or ""),
            loaded_at=self.loaded_at or "",
            last_error=self.last_error or "",
            device=self.device_name,
            model_type=facts.model_type if facts else "",
            trained_at=facts.trained_at if facts else "",
            accuracy=facts.accuracy if facts else None,
            macro_f1=facts.macro_f1 if facts else None,
            labels=facts.labels if facts else (),
            label_names=facts.label_names if facts else {},
            confidence=facts.confidence if facts else {},
            versions=self.recent_versions(),
        )

    # -- loading -----------------------------------------------------------------------------------
    def serving(self) -> Serving:
        """The serving settings a loaded classifier's kind applies (newsmodel.kinds.SERVED_KINDS)."""
        return Serving(
            max_length=self.max_length,
            truncation="head_tail" if self.truncation == "head_tail" else "head",
            batch_size=self.batch_size,
            gpu_memory_fraction=self.gpu_memory_fraction,
            tokenizer_workers=max(1, usable_cores() - 1),
        )

    @property
    def confidence(self) -> ModelConfidence:
        """The served model's calibration and the rule its answers are judged by (CONFIDENCE_THRESHOLD's when set)."""
        return self._confidence.with_override(self.confidence_threshold)

    def _load(self) -> tuple[ServedKind, Classifier]:
        """Load, configure and smoke-test the model MODEL_PATH or MODEL_DIR/current names, with its kind; raise
        NewsbotError if unusable."""
        path, version = resolve_serving_path(self.model_dir, self.model_path, self.cache_dir)
        kind, classifier = load_served(path, version, device=self.device)
        kind.configure(classifier, self.serving())
        try:
            (prediction,) = classifier.predict([_SMOKE_TEST])
            if not all(0.0 <= p <= 1.0 for p in prediction.scores.values()):
                raise ValueError(f"probabilities out of range: {prediction.scores}")
        except Exception as exc:
            _close(classifier)
            raise NewsbotError(f"{path}: the model loads but cannot predict: {exc}") from exc
        return kind, classifier

    def load(self) -> bool:
        """Load what is current now, in this thread (at start). False, and keep what is served, on failure."""
        try:
            kind, classifier = self._load()
        except Exception as exc:  # noqa: BLE001 - an unreachable store or a broken model: start, retry later
            self.last_error = str(exc)
            log.warning("no new model loaded: %s", exc)
            return False
        self._swap(kind, classifier)
        return True

    def _swap(self, kind: ServedKind, classifier: Classifier) -> None:
        confidence = read_confidence(classifier.path)
        served = confidence.with_override(self.confidence_threshold)
        facts = model_facts(classifier.path, classifier.version, labels_of(classifier), served)
        with self._serve_lock:  # waits for the batch in hand
            old, self._classifier = self._classifier, classifier
            self._kind = kind
            self._confidence = confidence
            self.loaded_at = _now_iso()
            self.last_error = None
            self.facts = facts
            self._versions_at = float("-inf")  # a new version was probably just registered: list them again
        log.info("serving model %s from %s (was %s)", classifier.version, classifier.path, old and old.version)
        metrics.set_model_info(classifier.version, kind.name)
        if old is not None:
            _close(old)
            del old
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def wanted_version(self) -> str | None:
        """The version that should be served now (MODEL_PATH's folder name, or what ``current`` names).

        Only ``current`` is read (one small object on an object store): a new version is downloaded when
        it is loaded, in the watcher thread, while the served one keeps answering."""
        if self.model_path is None:
            return current_version(self.model_dir)
        try:
            return resolve_serving_path(self.model_dir, self.model_path)[1]
        except ModelNotFoundError:
            return None

    def check_for_update(self) -> bool:
        """Load and swap in the current version if it is not the one served. True when a new one was swapped in."""
        try:
            wanted = self.wanted_version()
        except Exception as exc:  # noqa: BLE001 - an unreachable object store: keep serving, say why
            self.last_error = f"cannot read {self.model_dir}/current: {exc}"
            log.warning("%s", self.last_error)
            return False
        if wanted is None or wanted == self.version:
            return False
        failed_at = self._failed.get(wanted)
        if failed_at is not None and time.monotonic() - failed_at < max(RETRY_FAILED_LOAD_S, self.poll_interval_s):
            return False
        named = wanted if is_plain_name(wanted) else shown(wanted)  # `current` as read: one line, whatever it holds
        log.info("model %s is current; loading it while %s keeps serving", named, self.version)
        try:
            kind, classifier = self._load()
        except Exception as exc:  # noqa: BLE001 - a broken model must never stop the worker, whatever it raises
            # Refused (`current` outside MODEL_DIR, a download whose sha256 differs) or broken: one line, and the
            # version served so far keeps serving; tried again after RETRY_FAILED_LOAD_S.
            self._failed[wanted] = time.monotonic()
            self.last_error = f"{named}: {exc}"
            log.error("model %s not swapped in (still serving %s): %s", named, self.version, exc)
            return False
        self._failed.pop(wanted, None)
        self._swap(kind, classifier)
        return True

    # -- the watcher thread ------------------------------------------------------------------------
    def publish(self, connection: Redis, worker_name: str) -> None:
        """Publish the serving state (``newsbot:serving:<worker name>``), kept a few poll intervals."""
        serving.publish_serving_state(connection, self.serving_state(worker_name), self.poll_interval_s)

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
                serving.clear_serving_state(connection, worker_name)

        # Published once before the thread starts, so a worker that takes jobs is already listed as serving
        # (`/retrain status`, App Home) however late the thread gets its first turn on a loaded machine.
        try:
            self.publish(connection, worker_name)
        except RedisError as exc:
            log.warning("cannot publish the serving state: %s", exc)
        self._thread = threading.Thread(target=loop, name="model-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- serving -----------------------------------------------------------------------------------
    def predict(self, articles: Sequence[Article]) -> tuple[list[Prediction], ServedBy]:
        """Served answers for ``articles`` (one batch: calibrated scores, judged sure or unsure by the model's rule,
        :func:`newsmodel.confidence.judge`) and the model that made them (its version and labels: a model swapped
        in meanwhile waits for the batch, so both are the ones that predicted it)."""
        with self._serve_lock:
            classifier, kind = self._classifier, self._kind
            if classifier is None:
                raise ModelNotFoundError("no model loaded")
            started = time.perf_counter()
            predictions = judge(classifier.predict(articles), self.confidence)
            metrics.INFERENCE_SECONDS.labels(model_type=kind.name if kind else "unknown").observe(
                time.perf_counter() - started
            )
            metrics.BATCH_SIZE.observe(len(articles))
            self.batches += 1
            return predictions, ServedBy(classifier.version, labels_of(classifier))


def labels_of(classifier: Classifier) -> LabelSet:
    """The classifier's label set (livedoor's for a classifier that names none, as before label sets)."""
    labels = getattr(classifier, "labels", None)
    return labels if isinstance(labels, LabelSet) else LIVEDOOR


def _close(classifier: Any) -> None:
    close = getattr(classifier, "close", None)
    if callable(close):
        close()
