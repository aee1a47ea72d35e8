"""A livedoor-style linear model trained for the confidence tests: the synthetic archive with 40 articles a label
(4 validation articles a label: enough to calibrate and to choose a sure bar), and a bar for 95 % precision."""

from __future__ import annotations

from pathlib import Path

from testkit.fake_corpus import build_archive
from training.api import TrainOutcome, train, train_options


def train_calibrated_linear(root: Path) -> TrainOutcome:
    """Train and promote it into ``root / "models"`` (its corpus and cache under ``root`` too)."""
    archive = build_archive(root / "ldcc-20140209.tar.gz", per_class=40)
    outcome = train(
        train_options(
            data=str(archive),
            model_type="linear",
            model_dir=root / "models",
            cache_dir=root / "cache",
            target_precision=0.95,
        )
    )
    assert outcome.promoted
    return outcome
