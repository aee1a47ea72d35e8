"""The training run's options: one dataclass, parsed by HfArgumentParser (each field's help is the CLI's --help text)
together with transformers.TrainingArguments for the Trainer's other options (TrainOptions.trainer_args).

Defaults that depend on the deployment (data, base model, MODEL_DIR, tolerance) come from the Settings through
options_from_settings; the CLI and the /retrain job both use it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from common.settings import Settings
from training.corpus import OFFICIAL_URL

DEFAULT_BASE_MODEL = "tohoku-nlp/bert-base-japanese-v3"
DEFAULT_DATA = OFFICIAL_URL


@dataclass
class TrainOptions:
    data: str = field(
        default=DEFAULT_DATA,
        metadata={
            "help": "Training data: the livedoor corpus (ldcc-20140209.tar.gz path or URL, or its text/ folder), "
            "a CSV, JSON Lines or Parquet file with columns text, label (and optional title, id), or a folder "
            "with one sub-folder of .txt files per label. See docs/categories.md."
        },
    )
    labels_file: Path | None = field(
        default=None,
        metadata={"help": "Display names of the labels: YAML or JSON {label: {ja: ..., en: ...}} (LABELS_FILE)."},
    )
    data_encoding: str = field(
        default="utf-8",
        metadata={"help": "Encoding of a CSV, JSON Lines or .txt dataset, e.g. cp932 for Shift_JIS from Excel."},
    )
    base_model: str = field(
        default=DEFAULT_BASE_MODEL, metadata={"help": "Hub name or local save_pretrained folder to fine-tune (bert)."}
    )
    model_type: Literal["bert", "linear"] = field(
        default="bert", metadata={"help": "bert: fine-tune a BERT; linear: TF-IDF + linear SVM (CPU, < 1 min)."}
    )
    epochs: float = field(default=4.0, metadata={"help": "Training epochs."})
    batch_size: int = field(default=16, metadata={"help": "Examples per device per step."})
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Steps whose gradients are summed before one optimiser update."}
    )
    max_length: int = field(
        default=512, metadata={"help": "Tokens per article at most: title + body, only the body truncated."}
    )
    learning_rate: float = field(default=3e-5, metadata={"help": "Peak learning rate (AdamW)."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    warmup: float = field(
        default=0.1, metadata={"help": "Warm-up: a ratio of the total steps if < 1, else a number of steps."}
    )
    max_steps: int = field(
        default=-1, metadata={"help": "Stop after this many optimiser steps (overrides --epochs when > 0)."}
    )
    seed: int = field(default=42, metadata={"help": "Random seed for training (the split uses --split-seed)."})
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
    linear_c: float = field(
        default=1.0, metadata={"help": "Regularisation C of the linear SVM (linear model and baseline)."}
    )
    baseline: bool = field(
        default=True, metadata={"help": "Also train the TF-IDF + SVM baseline on the same split and report it."}
    )
    force: bool = field(
        default=False, metadata={"help": "Make the new version current even if its test macro-F1 is worse."}
    )
    promotion_tolerance: float = field(default=0.0, metadata={"help": "Promote if test macro-F1 >= current's - this."})
    model_dir: str = field(
        default="models", metadata={"help": "The model registry (MODEL_DIR): a folder or s3://bucket/prefix."}
    )
    run_dir: Path = field(
        default=Path("runs"),
        metadata={"help": "Where each run's checkpoints and TensorBoard logs go (runs/<version>)."},
    )
    cache_dir: Path = field(default=Path(".cache/data"), metadata={"help": "Download and tokenisation cache."})
    eval_batch_size: int = field(default=64, metadata={"help": "Examples per device per evaluation step."})
    device: str | None = field(
        default=None, metadata={"help": "cpu or cuda to force one (default: the Trainer's choice)."}
    )
    # Any other transformers.TrainingArguments values (warmup_steps, lr_scheduler_type, …), applied last, over
    # the values made from the fields above. The CLI fills it from the TrainingArguments flags given
    # (``--warmup_steps 1``), as transformers' example scripts take them; it is no flag itself.
    trainer_args: dict[str, Any] = field(default_factory=dict, metadata={"help": argparse.SUPPRESS})

    def for_log(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}

    @property
    def split_path(self) -> Path:
        """``--split-file``, else in the data cache: ``split-seed<N>.jsonl`` for livedoor, one file per dataset
        otherwise (:func:`training.dataset.split_file_name`)."""
        from training.dataset import split_file_name

        return self.split_file or self.cache_dir / split_file_name(self.data, self.split_seed)


def options_from_settings(settings: Settings, **overrides: Any) -> TrainOptions:
    """Options with the deployment's defaults (TRAIN_DATA, LABELS_FILE, BASE_MODEL, MODEL_DIR, DATA_CACHE_DIR,
    TRAIN_RUN_DIR, PROMOTION_TOLERANCE), then ``overrides`` (None values are ignored)."""
    base = TrainOptions(
        data=settings.train_data,
        labels_file=settings.labels_file,
        base_model=settings.base_model,
        model_dir=settings.model_dir,
        cache_dir=settings.data_cache_dir,
        run_dir=settings.train_run_dir,
        promotion_tolerance=settings.promotion_tolerance,
    )
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})
