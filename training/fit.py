"""What fitting a model takes and leaves, whatever its kind: the data it is fitted on (:class:`TrainingData`), the
phases it reports (:class:`Clock`) and its result (:class:`Fit`), which :mod:`training.api` evaluates and writes
into the version folder. Each kind's fitting step (:data:`training.kinds.TRAINED_KINDS`) goes from one to the other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.articles import Article
from common.labels import LabelSet
from training.corpus import CorpusArticle
from training.dataset import LabelledData
from training.examples import ExtraExamples
from training.progress import Progress
from training.split import Split

log = logging.getLogger(__name__)


def article_of(article: CorpusArticle) -> Article:
    return Article(title=article.title, body=article.body)


@dataclass
class Clock:
    """Reports the run's phases, with the time since the run started."""

    report: Callable[[Progress], None]
    started: float = field(default_factory=time.monotonic)

    def phase(self, name: str, message: str, metrics: dict[str, float] | None = None) -> None:
        log.info("%s: %s", name, message)
        self.report(Progress(name, 0, 0, None, time.monotonic() - self.started, None, metrics or {}, message))


@dataclass(frozen=True)
class TrainingData:
    """The data (articles and label set), its fixed split, and the extra examples added to the train split."""

    data: LabelledData
    split: Split
    extra: ExtraExamples
    holdout: ExtraExamples = field(default_factory=lambda: ExtraExamples([], 0))  # editor-confirmed, never trained on
    recent: ExtraExamples = field(default_factory=lambda: ExtraExamples([], 0))  # the newest editor labels, ditto

    @property
    def articles(self) -> list[CorpusArticle]:
        return self.data.articles

    @property
    def labels(self) -> LabelSet:
        return self.data.labels

    @property
    def train_set(self) -> list[CorpusArticle]:
        return [*self.split.train, *self.extra.articles]


@dataclass
class Fit:
    """A model fitted and saved into its (staging) folder, with its test-split predictions."""

    test_predictions: list[str]  # slugs, in the test split's order
    hyperparameters: dict[str, Any]
    base_model: str | None = None  # the model fine-tuned (bert); None for a model fitted from scratch
    best_validation: dict[str, float] = field(default_factory=dict)  # the kept epoch's validation metrics
    run_dir: Path | None = None  # checkpoints and TensorBoard logs (bert)
    trainer_args: dict[str, Any] | None = None  # the Trainer's effective TrainingArguments (bert)
    seconds: float = 0.0  # fitting time, test predictions included
