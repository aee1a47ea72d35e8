"""What a training run reports as it goes (the /retrain job turns it into a Slack message)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from common.exceptions import TrainingStoppedError

log = logging.getLogger(__name__)


@dataclass
class Progress:
    phase: str  # "data" | "tokenize" | "train" | "evaluate" | "register" | "done"
    step: int
    total_steps: int
    epoch: float | None
    elapsed_s: float
    eta_s: float | None
    metrics: dict[str, float] = field(default_factory=dict)  # latest validation metrics (eval_accuracy, …)
    message: str = ""


def safe_reporter(progress: Callable[[Progress], None] | None) -> Callable[[Progress], None]:
    """``progress`` wrapped so that an exception in it is logged and never stops the training, except
    :class:`TrainingStoppedError`: the way to stop a training at its next step (``/retrain cancel``, shutdown)."""

    def report(update: Progress) -> None:
        if progress is None:
            return
        try:
            progress(update)
        except TrainingStoppedError:
            raise
        except Exception:
            log.warning("progress callback failed (ignored)", exc_info=True)

    return report
