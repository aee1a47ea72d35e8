"""The served model kinds: one row per :data:`common.kinds.ModelKind`, the one place where serving tells them apart.

A row says how to recognise a version folder of that kind, which of its JSON files holds ``id2label``, how to
load it as a :class:`~newsmodel.prediction.Classifier`, how to apply a worker's :class:`Serving` settings to it,
and which device it runs on. Each kind's code is its own module (:mod:`newsmodel.bert`, :mod:`newsmodel.linear`);
a BERT's (torch, transformers) is imported only when one is loaded. A new kind is one module and one row here
(and its training side, :mod:`training.kinds`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common.kinds import ModelKind
from newsmodel.linear import LINEAR_CONFIG, LinearClassifier, is_linear_folder
from newsmodel.prediction import Classifier, Serving

BERT_CONFIG = "config.json"


@dataclass(frozen=True, slots=True)
class ServedKind:
    """How serving handles one model kind."""

    name: ModelKind
    config_file: str  # the folder's JSON file with the model's id2label
    is_folder: Callable[[Path], bool]  # whether a folder holds a complete model of this kind
    load: Callable[[Path, str | None, str | None], Classifier]  # (folder, version, device)
    configure: Callable[[Classifier, Serving], None]  # apply a worker's serving settings after loading
    device: Callable[[Classifier], str | None]  # where it runs; None when it takes no device (the CPU)


def _is_bert_folder(path: Path) -> bool:
    return (path / BERT_CONFIG).is_file()


def _load_bert(path: Path, version: str | None, device: str | None) -> Classifier:
    from newsmodel.bert import BertClassifier

    return BertClassifier(path, version, device=device)


def _configure_bert(classifier: Classifier, serving: Serving) -> None:
    from newsmodel.bert import BertClassifier, configure_for_serving

    if not isinstance(classifier, BertClassifier):
        raise TypeError(f"not a BERT classifier: {type(classifier).__name__}")
    configure_for_serving(classifier, serving)


def _bert_device(classifier: Classifier) -> str | None:
    from newsmodel.bert import BertClassifier

    return str(classifier.device) if isinstance(classifier, BertClassifier) else None


def _load_linear(path: Path, version: str | None, device: str | None) -> Classifier:
    return LinearClassifier(path, version)  # numpy on the CPU: no device to choose


def _configure_linear(classifier: Classifier, serving: Serving) -> None:
    """Nothing to set: the linear model reads the whole text and scores any batch at once."""


def _no_device(classifier: Classifier) -> str | None:
    return None


# Recognised in this order: a linear model's files are specific to it, a save_pretrained folder is any config.json.
SERVED_KINDS: dict[ModelKind, ServedKind] = {
    "linear": ServedKind(
        name="linear",
        config_file=LINEAR_CONFIG,
        is_folder=is_linear_folder,
        load=_load_linear,
        configure=_configure_linear,
        device=_no_device,
    ),
    "bert": ServedKind(
        name="bert",
        config_file=BERT_CONFIG,
        is_folder=_is_bert_folder,
        load=_load_bert,
        configure=_configure_bert,
        device=_bert_device,
    ),
}


def served_kind_of(path: Path) -> ServedKind | None:
    """The kind of the model in the folder ``path``, or None when it holds none (or a half-written one)."""
    return next((kind for kind in SERVED_KINDS.values() if kind.is_folder(path)), None)
