"""What a served model answers: a :class:`Prediction` per article, behind the :class:`Classifier` protocol.

Also the model contract on labels: a model folder's ``id2label`` holds at least two unique labels with ids
``0…n-1`` (any labels: livedoor's nine slugs or a newsroom's own), and its optional ``labels.json`` gives their
display names (:meth:`common.labels.LabelSet.to_dict`). No torch here: the registry, the bot's contracts and the
linear model use these without loading a BERT.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from common.articles import Article
from common.exceptions import InvalidModelError, LabelSetError
from common.labels import LIVEDOOR, LabelSet
from newsmodel.encoding import Truncation

# The display names of a version's labels, beside its model files.
LABELS_FILE = "labels.json"


@dataclass(frozen=True, slots=True)
class Prediction:
    """Probabilities for every label of the model that made it; ``label`` (alias ``slug``) is the most probable.

    ``support``, where a kind gives one, is how strongly any one label claims the article on its own (the linear
    model's top one-vs-rest probability before normalising): the sure rule then judges it instead of the top
    probability, as it separates stories from desks the model does not know far better (docs/training.md, Open
    set). A served answer (:func:`newsmodel.confidence.judge`) has calibrated scores, ``unsure`` set by the served
    model's rule and ``threshold``, the bar it was judged against; a classifier's own output is raw and not judged.
    """

    scores: dict[str, float]
    unsure: bool = False
    threshold: float | None = None
    support: float | None = None

    @property
    def sure_score(self) -> float:
        """What the sure rule compares with its bar: the support where the kind gives one, else the confidence."""
        return self.confidence if self.support is None else self.support

    @property
    def label(self) -> str:
        return max(self.scores, key=self.scores.__getitem__)

    @property
    def slug(self) -> str:
        """The most probable label (the name from when the labels were always livedoor's slugs)."""
        return self.label

    @property
    def confidence(self) -> float:
        return self.scores[self.label]

    def top(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` most probable labels with their probabilities, most probable first."""
        return sorted(self.scores.items(), key=lambda kv: kv[1], reverse=True)[:k]


class Classifier(Protocol):
    """What the worker serves and ``python -m training predict`` uses, whatever the model kind."""

    version: str
    path: Path
    labels: LabelSet  # in label-id order, with the display names of the version folder's labels.json

    def predict(self, articles: Sequence[Article]) -> list[Prediction]: ...


@dataclass(frozen=True, slots=True)
class Serving:
    """The worker's serving settings, applied to a freshly loaded classifier by its kind's ``configure``
    (:data:`newsmodel.kinds.SERVED_KINDS`); a kind uses those that mean something to it."""

    max_length: int = 512
    truncation: Truncation = "head"
    batch_size: int = 32  # articles per forward pass on a CPU (a GPU's is sized from its free memory)
    gpu_memory_fraction: float = 1.0
    tokenizer_workers: int = 1  # tokenizer processes beside a GPU


def validate_label_map(id2label: Mapping[int, str], where: Path) -> list[str]:
    """The labels in label-id order; raises :class:`InvalidModelError` unless the ids are ``0…n-1`` and the
    labels at least two, unique and usable (:func:`common.labels.check_label`)."""
    ids = sorted(id2label)
    if ids != list(range(len(ids))):
        raise InvalidModelError(f"{where}: id2label ids must be 0…n-1, found {ids}")
    labels = [id2label[i] for i in ids]
    try:
        LabelSet(tuple(labels))
    except LabelSetError as exc:
        raise InvalidModelError(f"{where}: id2label is not a usable label set: {exc}") from None
    return labels


def label_set_of(id2label: Mapping[int, str], folder: Path) -> LabelSet:
    """The model's :class:`LabelSet`: ``id2label``'s labels in id order, with the display names of the folder's
    ``labels.json``. Without that file, a model of the nine livedoor slugs gets livedoor's names; any other
    shows its labels as they are. A ``labels.json`` whose labels are not the model's is a broken model."""
    labels = tuple(validate_label_map(id2label, folder))
    path = folder / LABELS_FILE
    if not path.is_file():
        return LabelSet(labels, LIVEDOOR.names) if labels == LIVEDOOR.labels else LabelSet(labels)
    try:
        stored = LabelSet.from_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, LabelSetError) as exc:
        raise InvalidModelError(f"{path}: not a label set: {exc}") from None
    if stored.labels != labels:
        raise InvalidModelError(f"{path}: labels {list(stored.labels)} are not the model's id2label {list(labels)}")
    return stored


def write_label_set(folder: Path, labels: LabelSet) -> Path:
    """Write ``labels.json`` (the labels in id order and their display names) into a version folder."""
    path = folder / LABELS_FILE
    path.write_text(labels.to_json() + "\n", encoding="utf-8")
    return path


def read_id2label(config: Path) -> dict[int, str]:
    """The ``id2label`` of a ``config.json`` or ``linear.json`` (JSON only: no torch, no transformers)."""
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
        return {int(k): str(v) for k, v in dict(data["id2label"]).items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidModelError(f"{config}: no readable id2label: {exc}") from None
