"""Loading a version folder as a :class:`~newsmodel.prediction.Classifier`, whatever its kind.

Each kind (:data:`newsmodel.kinds.SERVED_KINDS`) says how to recognise its folders and load them. torch and
transformers are imported only when a BERT is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from common.exceptions import InvalidModelError, ModelNotFoundError
from common.kinds import ModelKind
from common.labels import LabelSet
from newsmodel.kinds import SERVED_KINDS, ServedKind, served_kind_of
from newsmodel.prediction import Classifier, label_set_of, read_id2label

ModelType = ModelKind | Literal["unknown"]

_EXPECTED = " or ".join(sorted({kind.config_file for kind in SERVED_KINDS.values()}))


def model_type_of(path: Path) -> ModelType:
    """The kind of the model in ``path`` (``unknown`` when the folder holds no complete model)."""
    kind = served_kind_of(path)
    return "unknown" if kind is None else kind.name


def read_model_labels(path: Path) -> LabelSet:
    """The label set of the model in ``path``, read from its JSON files only (no torch): ``id2label`` of its
    kind's config file (``linear.json``, ``config.json``), display names from ``labels.json``. Raises
    :class:`InvalidModelError` when the folder holds no model or its labels break the contract."""
    kind = served_kind_of(path)
    if kind is None:
        raise InvalidModelError(f"{path}: no {_EXPECTED}")
    return label_set_of(read_id2label(path / kind.config_file), path)


def load_served(path: Path, version: str | None = None, *, device: str | None = None) -> tuple[ServedKind, Classifier]:
    """The kind of the model saved in ``path`` and its classifier (on ``device``, for a kind that takes one)."""
    if not path.is_dir():
        raise ModelNotFoundError(f"{path} is not a model folder")
    kind = served_kind_of(path)
    if kind is None:
        raise InvalidModelError(f"{path}: no {_EXPECTED} (not a model folder, or half-written)")
    return kind, kind.load(path, version, device)


def load_classifier(path: Path, version: str | None = None, *, device: str | None = None) -> Classifier:
    """Load the classifier saved in ``path`` (on ``device``, for a kind that takes one)."""
    return load_served(path, version, device=device)[1]
