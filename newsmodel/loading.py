"""Loading a version folder as a :class:`~newsmodel.prediction.Classifier`, whatever its kind.

A folder holding the linear model's files is the linear model; one with a ``config.json`` is a BERT
``save_pretrained`` folder. torch and transformers are imported only when a BERT is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from common.exceptions import InvalidModelError, ModelNotFoundError
from common.labels import LabelSet
from newsmodel.linear import LINEAR_CONFIG, LinearClassifier, is_linear_folder
from newsmodel.prediction import Classifier, label_set_of, read_id2label

ModelType = Literal["bert", "linear", "unknown"]
BERT_CONFIG = "config.json"


def model_type_of(path: Path) -> ModelType:
    """``linear`` for a folder holding the linear model's files, ``bert`` for a save_pretrained folder."""
    if is_linear_folder(path):
        return "linear"
    if (path / BERT_CONFIG).is_file():
        return "bert"
    return "unknown"


def read_model_labels(path: Path) -> LabelSet:
    """The label set of the model in ``path``, read from its JSON files only (no torch): ``id2label`` of
    ``linear.json`` or ``config.json``, display names from ``labels.json``. Raises :class:`InvalidModelError`
    when the folder holds no model or its labels break the contract."""
    kind = model_type_of(path)
    if kind == "unknown":
        raise InvalidModelError(f"{path}: no {BERT_CONFIG} or {LINEAR_CONFIG}")
    config = path / (LINEAR_CONFIG if kind == "linear" else BERT_CONFIG)
    return label_set_of(read_id2label(config), path)


def load_classifier(path: Path, version: str | None = None, *, device: str | None = None) -> Classifier:
    """Load the classifier saved in ``path``: the linear model's files, or a save_pretrained folder."""
    if not path.is_dir():
        raise ModelNotFoundError(f"{path} is not a model folder")
    kind = model_type_of(path)
    if kind == "linear":
        return LinearClassifier(path, version)
    if kind == "unknown":
        raise InvalidModelError(f"{path}: no {BERT_CONFIG} (not a save_pretrained folder, or half-written)")
    from newsmodel.bert import BertClassifier

    return BertClassifier(path, version, device=device)
