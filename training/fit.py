"""What fitting a model leaves, whatever its kind: the one result type of :mod:`training.bert` and
:mod:`training.linear`'s fitting steps, which :mod:`training.api` evaluates and writes into the version folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
