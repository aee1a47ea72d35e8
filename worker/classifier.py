"""The served classifier: loaded once when the worker starts and kept for every job."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import torch

from common.articles import Article
from common.exceptions import ModelNotFoundError, NewsbotError
from common.settings import Settings
from training.inference import Classifier, Prediction, load_classifier
from training.registry import resolve_serving_path

log = logging.getLogger(__name__)


def use_all_cores() -> int:
    """Let torch use every core this process may run on.

    torch sizes its intra-op pool from the machine, not from the CPU affinity or cgroup quota a
    container grants, and some launchers leave it at one thread; set it explicitly once at start.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cores))
    return cores


class ModelService:
    """Holds the active :class:`Classifier`. ``predict`` raises ModelNotFoundError while there is none."""

    def __init__(self, model_dir: Path, model_path: Path | None, device: str | None = None) -> None:
        self.model_dir = model_dir
        self.model_path = model_path
        self.device = device
        self._classifier: Classifier | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelService:
        return cls(settings.model_dir, settings.model_path)

    @property
    def version(self) -> str | None:
        return self._classifier.version if self._classifier else None

    def load(self) -> None:
        """Load the model that MODEL_PATH or MODEL_DIR/current names; keep serving nothing if there is none."""
        try:
            path, version = resolve_serving_path(self.model_dir, self.model_path)
            classifier = load_classifier(path, version, device=self.device)
        except NewsbotError as exc:
            log.warning("no model loaded: %s", exc)
            return
        with self._lock:
            self._classifier = classifier
        log.info("serving model %s from %s", classifier.version, path)

    def predict(self, articles: Sequence[Article]) -> tuple[list[Prediction], str]:
        """Predictions for ``articles`` and the version of the model that made them."""
        with self._lock:
            classifier = self._classifier
        if classifier is None:
            self.load()
            classifier = self._classifier
        if classifier is None:
            raise ModelNotFoundError("no model loaded")
        return classifier.predict(articles), classifier.version
