"""The trained model kinds: one row per :data:`common.kinds.ModelKind`, the one place where training tells them
apart.

A row says how the kind is fitted (its module's fitting step, from the train split to a saved model and its test
predictions), how the model card describes it, and which options it takes: a BERT is fine-tuned from a base model
for a number of epochs (:class:`~training.options.BertOptions` and the Trainer's ``TrainingArguments``); the linear
model has neither (:class:`~training.options.LinearOptions`) and is itself the TF-IDF + SVM baseline. Each kind's
code is its own module (:mod:`training.bert`, imported only when a BERT is trained, and :mod:`training.linear`). A
new kind is one module and one row here (and its serving side, :mod:`newsmodel.kinds`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common.kinds import ModelKind
from training.fit import Clock, Fit, TrainingData
from training.options import TrainOptions

# (options, data, the staging folder to save the model into, the run folder for checkpoints and logs, clock)
FitStep = Callable[[TrainOptions, TrainingData, Path, Path, Clock], Fit]


@dataclass(frozen=True, slots=True)
class TrainedKind:
    """How training handles one model kind."""

    name: ModelKind
    fit: FitStep
    description: str  # the model card's "A <description> that sorts Japanese news articles …"
    card_front_matter: str  # the model card's YAML front matter (Hub metadata), "" for none
    takes_base_model: bool  # fine-tuned from BertOptions.base_model (/retrain base=)
    takes_epochs: bool  # trained for the Trainer's num_train_epochs (/retrain epochs=)
    is_baseline: bool  # it is the TF-IDF + SVM baseline itself: none is trained beside it


def _fit_bert(options: TrainOptions, data: TrainingData, out_dir: Path, run_dir: Path, clock: Clock) -> Fit:
    from training.bert import fit_bert_model  # torch and transformers: only when a BERT is trained

    return fit_bert_model(options, data, out_dir, run_dir, clock)


def _fit_linear(options: TrainOptions, data: TrainingData, out_dir: Path, run_dir: Path, clock: Clock) -> Fit:
    from training.linear import fit_linear_model

    return fit_linear_model(options, data, out_dir, run_dir, clock)


TRAINED_KINDS: dict[ModelKind, TrainedKind] = {
    "bert": TrainedKind(
        name="bert",
        fit=_fit_bert,
        description="fine-tuned Japanese BERT",
        card_front_matter="---\nlanguage: ja\nlibrary_name: transformers\npipeline_tag: text-classification\n---\n\n",
        takes_base_model=True,
        takes_epochs=True,
        is_baseline=False,
    ),
    "linear": TrainedKind(
        name="linear",
        fit=_fit_linear,
        description="TF-IDF (MeCab words, 1–2-grams) + linear SVM",
        card_front_matter="",
        takes_base_model=False,
        takes_epochs=False,
        is_baseline=True,
    ),
}
