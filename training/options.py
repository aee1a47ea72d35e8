"""The training run's options, one dataclass per concern, each field's help its CLI --help text. They are parsed by
``transformers.HfArgumentParser`` together with ``transformers.TrainingArguments`` itself, which is taken as it is
(as transformers' example scripts take it):

- :class:`DataOptions`: which data, how it is read and split, the extra examples;
- :class:`RunOptions`: which model kind, where it is registered and when it is promoted, the baseline;
- :class:`BertOptions`: what a BERT is fine-tuned from and how much of each article it reads;
- :class:`LinearOptions`: the linear model's (and the baseline's) regularisation;
- ``TrainingArguments``: the Trainer's own (epochs, batch size, learning rate, seed, output_dir …). Where the
  product's tuned value differs from the Trainer's default it is in :data:`TRAINER_DEFAULTS`, the one place
  that sets them (:func:`trainer_arguments`, and the CLI's parser defaults).

:class:`TrainOptions` bundles them for :func:`training.api.train`. Defaults that depend on the deployment (data,
labels, base model, MODEL_DIR, caches, tolerance) come from the Settings (:func:`deployment_defaults`); the CLI
and the /retrain job both use them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from common.kinds import ModelKind
from common.settings import DEFAULT_BASE_MODEL, LIVEDOOR_CORPUS_URL, Settings

if TYPE_CHECKING:
    from transformers import TrainingArguments


@dataclass
class DataOptions:
    data: str = field(
        default=LIVEDOOR_CORPUS_URL,
        metadata={
            "help": "Training data: the livedoor corpus (ldcc-20140209.tar.gz path or URL, or its text/ folder), "
            "a CSV, JSON Lines or Parquet file with columns text, label (and optional title, id), or a folder "
            "with one sub-folder of .txt files per label. See docs/categories.md."
        },
    )
    labels_file: Path | None = field(
        default=None,
        metadata={
            "help": "Display names of the labels: YAML or JSON {label: {ja: ..., en: ...}} (LABELS_FILE).",
            "aliases": ["--labels"],
        },
    )
    data_encoding: str = field(
        default="utf-8",
        metadata={"help": "Encoding of a CSV, JSON Lines or .txt dataset, e.g. cp932 for Shift_JIS from Excel."},
    )
    split_seed: int = field(
        default=42, metadata={"help": "Seed of the 8:1:1 split; keep it fixed so the test articles never change."}
    )
    split_file: Path | None = field(
        default=None, metadata={"help": "The split's JSONL (default: <data cache>/split-seed<N>.jsonl)."}
    )
    keep_leaks: bool = field(
        default=False, metadata={"help": "Keep category-revealing title tags and site names (stripped by default)."}
    )
    extra_examples: Path | None = field(
        default=None, metadata={"help": 'JSONL of {"text", "slug"} corrections, added to the train split.'}
    )
    holdout_examples: Path | None = field(
        default=None,
        metadata={
            "help": "JSONL of editor-confirmed examples (as --extra-examples), never trained on: a candidate worse "
            "on them than the current model is not promoted."
        },
    )
    recent_examples: Path | None = field(
        default=None,
        metadata={
            "help": "JSONL of the most recent editor-labelled examples (as --extra-examples), labelled after the "
            "training data and never trained on: scored beside the test split when there are at least 30; a "
            "candidate clearly worse on them than the current model is not promoted."
        },
    )
    cache_dir: Path = field(default=Path(".cache/data"), metadata={"help": "Download and tokenisation cache."})

    @property
    def split_path(self) -> Path:
        """``--split-file``, else in the data cache: ``split-seed<N>.jsonl`` for livedoor, one file per dataset
        otherwise (:func:`training.dataset.split_file_name`)."""
        from training.dataset import split_file_name

        return self.split_file or self.cache_dir / split_file_name(self.data, self.split_seed)


@dataclass
class RunOptions:
    model_type: ModelKind = field(
        default="bert", metadata={"help": "bert: fine-tune a BERT; linear: TF-IDF + linear SVM (CPU, < 1 min)."}
    )
    model_dir: str = field(
        default="models", metadata={"help": "The model registry (MODEL_DIR): a folder or s3://bucket/prefix."}
    )
    force: bool = field(
        default=False, metadata={"help": "Make the new version current even if its test macro-F1 is worse."}
    )
    promotion_tolerance: float = field(default=0.0, metadata={"help": "Promote if test macro-F1 >= current's - this."})
    baseline: bool = field(
        default=True,
        metadata={
            "help": "Also train the TF-IDF + SVM baseline on the same split and report it (unless it is the model)."
        },
    )
    device: str | None = field(
        default=None, metadata={"help": "cpu or cuda to force one (default: the Trainer's choice)."}
    )
    target_precision: float = field(
        default=0.99,
        metadata={
            "help": 'The "sure" rule is chosen on the validation split so that sure answers are right at least this '
            "often (TARGET_PRECISION)."
        },
    )


@dataclass
class BertOptions:
    base_model: str = field(
        default=DEFAULT_BASE_MODEL, metadata={"help": "Hub name or local save_pretrained folder to fine-tune (bert)."}
    )
    max_length: int = field(
        default=512, metadata={"help": "Tokens per article at most: title + body, only the body truncated (bert)."}
    )


@dataclass
class LinearOptions:
    linear_c: float = field(
        default=1.0, metadata={"help": "Regularisation C of the linear SVM (linear model and baseline)."}
    )


# The product's values of the Trainer's own options where they differ from transformers' defaults (or matter to
# it): the tuned hyper-parameters, then the run's shape (best epoch by validation macro-F1, TensorBoard logs).
# The one place that sets them.
# A run adjusts a few to its size (training.bert.run_arguments); mixed precision is chosen from the hardware.
TRAINER_HYPERPARAMETERS: dict[str, Any] = {
    "num_train_epochs": 4.0,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 64,
    "learning_rate": 3e-5,
    "weight_decay": 0.01,
    "warmup_steps": 0.1,  # a ratio of the total steps (< 1)
    "lr_scheduler_type": "linear",
    "seed": 42,
}
TRAINER_DEFAULTS: dict[str, Any] = {
    **TRAINER_HYPERPARAMETERS,
    "output_dir": "runs",  # the runs folder (TRAIN_RUN_DIR): each run's checkpoints and logs in <output_dir>/<version>
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "logging_strategy": "steps",
    "logging_steps": 50,  # at most: a run logs at least every quarter epoch
    "load_best_model_at_end": True,
    "metric_for_best_model": "macro_f1",
    "greater_is_better": True,
    "save_total_limit": 1,
    "save_only_model": True,
    "train_sampling_strategy": "group_by_length",
    "length_column_name": "length",
    "report_to": ["tensorboard"],
    "dataloader_num_workers": 0,
    "disable_tqdm": False,
}

# Short spellings of some of the Trainer's flags that the CLI also takes: flag -> (TrainingArguments field, type).
TRAINER_FLAG_ALIASES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "--epochs": ("num_train_epochs", float),
    "--batch-size": ("per_device_train_batch_size", int),
    "--eval-batch-size": ("per_device_eval_batch_size", int),
    "--warmup": ("warmup_steps", float),
    "--run-dir": ("output_dir", str),
}


def mixed_precision() -> tuple[bool, bool]:
    """(bf16, fp16): bf16 on a GPU that supports it, else fp16 on a GPU, else full precision."""
    import torch

    if not torch.cuda.is_available():
        return False, False
    bf16 = torch.cuda.is_bf16_supported()
    return bf16, not bf16


def trainer_defaults() -> dict[str, Any]:
    """:data:`TRAINER_DEFAULTS` and the mixed precision of this machine."""
    bf16, fp16 = mixed_precision()
    return {**TRAINER_DEFAULTS, "bf16": bf16, "fp16": fp16}


def trainer_arguments(**values: Any) -> TrainingArguments:
    """``TrainingArguments`` with the product's defaults (:func:`trainer_defaults`), then ``values``."""
    from transformers import TrainingArguments

    return TrainingArguments(**{**trainer_defaults(), **values})


def trainer_field_names() -> frozenset[str]:
    from transformers import TrainingArguments

    return frozenset(f.name for f in fields(TrainingArguments) if f.init)


OUR_OPTIONS: tuple[type[Any], ...] = (DataOptions, RunOptions, BertOptions, LinearOptions)


@dataclass
class TrainOptions:
    """Everything a training run takes, by concern."""

    trainer: TrainingArguments
    data: DataOptions = field(default_factory=DataOptions)
    run: RunOptions = field(default_factory=RunOptions)
    bert: BertOptions = field(default_factory=BertOptions)
    linear: LinearOptions = field(default_factory=LinearOptions)

    @property
    def run_root(self) -> Path:
        """The runs folder: each run's checkpoints and TensorBoard logs go into ``<run_root>/<version>``."""
        return Path(str(self.trainer.output_dir))

    def for_log(self) -> dict[str, Any]:
        """Our options (not the Trainer's: training.json keeps its effective arguments beside), JSON-able."""
        ours = {k: v for part in (self.data, self.run, self.bert, self.linear) for k, v in asdict(part).items()}
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in ours.items()}


Options = TypeVar("Options")


def options_of(cls: type[Options], values: dict[str, Any]) -> Options:
    """An instance of the options dataclass ``cls`` from those of ``values`` that are its fields."""
    assert is_dataclass(cls)
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def deployment_defaults(settings: Settings) -> dict[str, Any]:
    """The options whose defaults are the deployment's settings (TRAIN_DATA, LABELS_FILE, DATA_CACHE_DIR,
    BASE_MODEL, MODEL_DIR, PROMOTION_TOLERANCE, TARGET_PRECISION, and the Trainer's output_dir from TRAIN_RUN_DIR),
    by name."""
    return {
        "data": settings.train_data,
        "labels_file": settings.labels_file,
        "cache_dir": settings.data_cache_dir,
        "base_model": settings.base_model,
        "model_dir": settings.model_dir,
        "promotion_tolerance": settings.promotion_tolerance,
        "target_precision": settings.target_precision,
        "output_dir": str(settings.train_run_dir),
    }


def train_options(**values: Any) -> TrainOptions:
    """Options from ``values`` over the product's defaults, each named as a field of one of the option dataclasses
    or of ``TrainingArguments`` (``data="…"``, ``model_type="linear"``, ``num_train_epochs=2``)."""
    ours = {f.name for cls in OUR_OPTIONS for f in fields(cls)}
    trainer_names = trainer_field_names()
    unknown = sorted(set(values) - ours - trainer_names)
    if unknown:
        raise TypeError(f"not a training option: {', '.join(unknown)}")
    return TrainOptions(
        trainer=trainer_arguments(**{k: v for k, v in values.items() if k in trainer_names}),
        data=options_of(DataOptions, values),
        run=options_of(RunOptions, values),
        bert=options_of(BertOptions, values),
        linear=options_of(LinearOptions, values),
    )


def options_from_settings(settings: Settings, **values: Any) -> TrainOptions:
    """:func:`train_options` with the deployment's defaults (:func:`deployment_defaults`), then ``values`` (None
    values are ignored)."""
    return train_options(**{**deployment_defaults(settings), **{k: v for k, v in values.items() if v is not None}})
