"""Open-set evaluation: how the bot behaves on stories from a desk its model does not know.

For each label left out (all of them by default), a model of the run's kind is trained exactly as ``train`` trains
one (the kind's own fitting step, :data:`training.kinds.TRAINED_KINDS`) on the train split without that label, its
calibration and sure bar are fitted on the validation split without it (:mod:`training.confidence`), and the whole
test split is then judged as the bot judges it (:func:`newsmodel.confidence.judge`). Reported per label left out:
the share of its test articles called unsure (they should all be), the share of the known labels' articles called
sure (coverage) and the precision of the sure answers (an unseen article called sure is always wrong). Pooled over
the hold-outs, with the curve of the three as one bar on the sure score moves, and the best bar. Nothing is
registered: each model lives in a temporary folder.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from common.exceptions import DatasetError
from common.labels import LabelSet
from newsmodel.confidence import judge
from newsmodel.loading import load_classifier
from training.confidence import fit_confidence
from training.fit import Clock, TrainingData, article_of
from training.kinds import TRAINED_KINDS
from training.options import TrainOptions
from training.progress import Progress, safe_reporter
from training.split import Split

log = logging.getLogger(__name__)

# Targets of issue 19 for the linear model on livedoor, pooled over the nine hold-outs.
TARGETS = {"unseen_unsure": 0.80, "known_sure": 0.85, "precision_when_sure": 0.99}
CURVE_BARS = tuple(round(b, 3) for b in np.linspace(0.05, 0.995, 64))


def without(labels: LabelSet, label: str) -> LabelSet:
    kept = tuple(x for x in labels if x != label)
    return LabelSet(kept, {x: labels.names[x] for x in kept if x in labels.names})


def _figures(unseen: np.ndarray, sure: np.ndarray, correct: np.ndarray) -> dict[str, float | int]:
    known = ~unseen
    return {
        "unseen": int(unseen.sum()),
        "known": int(known.sum()),
        "unseen_unsure": float((~sure & unseen).sum() / max(1, unseen.sum())),
        "known_sure": float((sure & known).sum() / max(1, known.sum())),
        "precision_when_sure": float((sure & correct).sum() / max(1, sure.sum())),
        "sure": int(sure.sum()),
    }


def hold_out(options: TrainOptions, data: TrainingData, label: str, clock: Clock) -> dict[str, Any]:
    """Train without ``label``, choose the bar on the validation split without it, judge the whole test split."""
    kind = TRAINED_KINDS[options.run.model_type]
    known = without(data.labels, label)
    split = Split(
        train=[a for a in data.split.train if a.slug != label],
        validation=[a for a in data.split.validation if a.slug != label],
        test=data.split.test,
    )
    extra = replace(data.extra, articles=[a for a in data.extra.articles if a.slug != label])
    sub = TrainingData(replace(data.data, labels=known), split, extra)
    with tempfile.TemporaryDirectory(prefix=f"openset-{label}-") as tmp:
        folder = Path(tmp) / "model"
        kind.fit(options, sub, folder, Path(tmp) / "run", clock)
        classifier = load_classifier(folder, f"without-{label}", device=options.run.device)
        validation = classifier.predict([article_of(a) for a in split.validation])
        test = classifier.predict([article_of(a) for a in split.test])
    known_test = [i for i, a in enumerate(split.test) if a.slug != label]
    fitted = fit_confidence(
        validation,
        [a.slug for a in split.validation],
        [test[i] for i in known_test],
        [split.test[i].slug for i in known_test],
        known,
        target_precision=options.run.target_precision,
    )
    judged = judge(test, fitted.confidence)
    truth = np.asarray([a.slug for a in split.test])
    unseen = truth == label
    sure = np.asarray([not p.unsure for p in judged])
    correct = np.asarray([p.label for p in judged]) == truth
    scores = np.asarray(
        [p.sure_score if fitted.confidence.rule.score == "sure_score" else p.confidence for p in judged]
    )
    return {
        "label": label,
        "threshold": fitted.confidence.rule.threshold,
        "rule_source": fitted.confidence.rule.source,
        "validation_coverage": fitted.confidence.rule.coverage,
        **_figures(unseen, sure, correct),
        "_scores": scores,
        "_unseen": unseen,
        "_correct": correct,
    }


def pooled(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The figures over all hold-outs at each one's own bar, the curve of one shared bar, and its best point."""
    unseen = np.concatenate([r["_unseen"] for r in rows])
    correct = np.concatenate([r["_correct"] for r in rows])
    scores = np.concatenate([r["_scores"] for r in rows])
    sure = np.concatenate([r["_scores"] >= r["threshold"] for r in rows])
    curve = [{"bar": float(bar), **_figures(unseen, scores >= bar, correct)} for bar in CURVE_BARS]

    def met(point: dict[str, Any]) -> int:
        return sum(point[name] >= target for name, target in TARGETS.items())

    # The best shared bar: most targets met, then the highest precision when sure with known coverage ≥ half.
    usable = [p for p in curve if p["known_sure"] >= 0.5] or curve
    best = max(usable, key=lambda p: (met(p), p["precision_when_sure"] + p["unseen_unsure"] + p["known_sure"]))
    return {"at_each_bar": _figures(unseen, sure, correct), "targets": TARGETS, "curve": curve, "best_shared_bar": best}


def open_set(
    options: TrainOptions,
    labels: Sequence[str] | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> dict[str, Any]:
    """The open-set evaluation over ``labels`` left out one at a time (default: every label of the data)."""
    from training.api import load_data

    clock = Clock(safe_reporter(progress))
    data = load_data(options.data, clock)
    chosen = list(labels or data.labels)
    unknown = [label for label in chosen if label not in data.labels]
    if unknown:
        raise DatasetError(
            options.data.data,
            f"データにないラベル: {unknown}",
            f"labels not in the data: {unknown} (labels: {list(data.labels)})",
        )
    if len(data.labels) < 3:
        raise DatasetError(
            options.data.data,
            "ラベルを一つ除くと二つ未満になります。",
            "leaving one label out needs at least three labels",
        )
    rows = []
    for label in chosen:
        clock.phase("openset", f"training without {label}")
        row = hold_out(options, data, label, clock)
        log.info(
            "without %s: %.1f%% of its articles unsure, %.1f%% of the others sure, precision when sure %.2f%%",
            label,
            100 * row["unseen_unsure"],
            100 * row["known_sure"],
            100 * row["precision_when_sure"],
        )
        rows.append(row)
    summary = pooled(rows)
    return {
        "model_type": options.run.model_type,
        "target_precision": options.run.target_precision,
        "held_out": [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows],
        **summary,
    }
