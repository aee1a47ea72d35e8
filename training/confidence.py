"""Fitting a version's confidence on the validation split: its calibration (a temperature), its "sure" rule for a
target precision, and what they are worth on the test split (expected calibration error before and after, the
precision-coverage curve), with the reliability diagram and the curve as PNGs beside the confusion matrix.

Kind-blind: it works on the probabilities the saved model itself serves (loaded from its folder through the serving
table), so what is measured here is what the bot does. The result is written into the folder as
``confidence.json`` (:mod:`newsmodel.confidence`), which serving reads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from common.labels import LabelSet
from newsmodel.confidence import DEFAULT_THRESHOLD, ModelConfidence, Rule
from newsmodel.prediction import Prediction
from training.evaluation import saved_figure

RELIABILITY_PNG = "reliability.png"
COVERAGE_PNG = "precision_coverage.png"
ECE_BINS = 15
# A validation split smaller than this is too small to calibrate or to choose a bar: the configured bar is used.
MIN_VALIDATION = 30
# The precision-coverage table in the report and model card shows these bars (and the chosen one).
TABLE_BARS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)

FloatArray = npt.NDArray[np.float64]


def probabilities(predictions: Sequence[Prediction], labels: LabelSet) -> FloatArray:
    """The predictions' scores as a matrix, one row per prediction, columns in label-id order."""
    return np.asarray([[p.scores[label] for label in labels] for p in predictions], dtype=np.float64).reshape(
        len(predictions), len(labels)
    )


def scaled(probs: FloatArray, temperature: float) -> FloatArray:
    """``softmax(log p / T)`` row-wise (:func:`newsmodel.confidence.temperature_scaled` on a matrix)."""
    logits = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exps = np.exp(logits)
    out: FloatArray = exps / exps.sum(axis=1, keepdims=True)
    return out


def sure_scores(predictions: Sequence[Prediction], calibrated: FloatArray) -> FloatArray:
    """What the sure rule compares (:attr:`newsmodel.prediction.Prediction.sure_score`): each prediction's support
    where its kind gives one, else its calibrated top probability."""
    top = calibrated.max(axis=1)
    return np.asarray(
        [top[i] if p.support is None else p.support for i, p in enumerate(predictions)], dtype=np.float64
    ).reshape(len(predictions))


def expected_calibration_error(probs: FloatArray, truth: npt.NDArray[np.int64], bins: int = ECE_BINS) -> float:
    """ECE over ``bins`` equal-width confidence bins: the mean gap between confidence and accuracy, weighted by the
    bins' shares of the answers."""
    if len(probs) == 0:
        return 0.0
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == truth
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(float(confidence[inside].mean()) - float(correct[inside].mean()))
    return float(total)


def fit_temperature(probs: FloatArray, truth: npt.NDArray[np.int64]) -> float:
    """The temperature minimising the negative log-likelihood of the true labels (between 0.05 and 20)."""
    from scipy.optimize import minimize_scalar

    logs = np.log(np.clip(probs, 1e-12, 1.0))

    def nll(log_t: float) -> float:
        z = logs / math.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(z).sum(axis=1))
        return float(-(z[np.arange(len(truth)), truth] - log_norm).mean())

    found = minimize_scalar(nll, bounds=(math.log(0.05), math.log(20.0)), method="bounded")
    return float(math.exp(found.x)) if nll(found.x) < nll(0.0) else 1.0


def curve(confidence: FloatArray, correct: npt.NDArray[np.bool_]) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Bars (each answer's confidence, highest first), the precision and the coverage of answering at each."""
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(correct[order])
    n = np.arange(1, len(order) + 1)
    return confidence[order], hits / n, n / len(order)


def choose_threshold(
    confidence: FloatArray, correct: npt.NDArray[np.bool_], target: float
) -> tuple[float, float, float] | None:
    """The lowest bar whose answers at or above it are right at least ``target`` of the time, with the precision and
    coverage it reaches; None when no bar reaches it. Ties in confidence are never split."""
    bars, precision, coverage = curve(confidence, correct)
    best: tuple[float, float, float] | None = None
    for i in range(len(bars)):
        if i + 1 < len(bars) and bars[i + 1] == bars[i]:
            continue  # the same confidence further down: a bar cannot stop in the middle of a tie
        if precision[i] >= target:
            best = (float(bars[i]), float(precision[i]), float(coverage[i]))
    return best


def at_bar(confidence: FloatArray, correct: npt.NDArray[np.bool_], bar: float) -> dict[str, float | int]:
    sure = confidence >= bar
    count = int(sure.sum())
    return {
        "threshold": round(float(bar), 6),
        "coverage": float(sure.mean()) if len(sure) else 0.0,
        "precision": float(correct[sure].mean()) if count else 1.0,
        "sure": count,
    }


@dataclass
class ConfidenceFit:
    """A fitted confidence and its report (for metrics.json, the model card and the /retrain report)."""

    confidence: ModelConfidence
    report: dict[str, Any]


def fit_confidence(
    validation: Sequence[Prediction],
    validation_truth: Sequence[str],
    test: Sequence[Prediction],
    test_truth: Sequence[str],
    labels: LabelSet,
    *,
    target_precision: float,
    fallback_threshold: float | None = None,
) -> ConfidenceFit:
    """Calibrate on the validation split's raw predictions, choose the bar for ``target_precision`` there, and measure
    both on the test split. A validation split under :data:`MIN_VALIDATION` answers, or one on which no bar reaches
    the target, keeps the configured bar (``fallback_threshold``, else :data:`DEFAULT_THRESHOLD`) and says so."""
    fallback = DEFAULT_THRESHOLD if fallback_threshold is None else fallback_threshold
    index = {label: i for i, label in enumerate(labels)}
    val_probs, test_probs = probabilities(validation, labels), probabilities(test, labels)
    val_y = np.asarray([index[t] for t in validation_truth], dtype=np.int64)
    test_y = np.asarray([index[t] for t in test_truth], dtype=np.int64)
    note = ""
    if len(val_y) < MIN_VALIDATION:
        temperature = 1.0
        note = (
            f"validation split too small to calibrate or choose a bar ({len(val_y)} < {MIN_VALIDATION} articles): "
            f"the configured bar {fallback} is used"
        )
    else:
        temperature = fit_temperature(val_probs, val_y)
    val_cal, test_cal = scaled(val_probs, temperature), scaled(test_probs, temperature)
    val_conf, val_correct = sure_scores(validation, val_cal), val_cal.argmax(axis=1) == val_y
    chosen = None if note else choose_threshold(val_conf, val_correct, target_precision)
    if chosen is None:
        if not note:
            note = (
                f"no bar reaches precision {target_precision} on the validation split: the configured bar {fallback} "
                "is used"
            )
        val_at = at_bar(val_cal.max(axis=1), val_correct, fallback)
        coverage, precision = float(val_at["coverage"]), float(val_at["precision"])
        rule = Rule(fallback, "default", "confidence", target_precision, coverage, precision, len(val_y))
    else:
        bar, precision, coverage = chosen
        rule = Rule(bar, "validation", "sure_score", target_precision, coverage, precision, len(val_y))
    test_correct = test_cal.argmax(axis=1) == test_y
    test_conf = sure_scores(test, test_cal) if rule.score == "sure_score" else test_cal.max(axis=1)
    ece = {
        "validation": {
            "before": expected_calibration_error(val_probs, val_y),
            "after": expected_calibration_error(val_cal, val_y),
        },
        "test": {
            "before": expected_calibration_error(test_probs, test_y),
            "after": expected_calibration_error(test_cal, test_y),
        },
    }
    confidence = ModelConfidence(
        temperature=temperature,
        rule=rule,
        calibrated=True,
        ece_before=ece["test"]["before"],
        ece_after=ece["test"]["after"],
        note=note,
    )
    bars = sorted({*TABLE_BARS, rule.threshold})
    report = {
        "temperature": temperature,
        "ece": ece,
        "ece_bins": ECE_BINS,
        "rule": {
            "threshold": rule.threshold,
            "source": rule.source,
            "score": rule.score,
            "target_precision": target_precision,
            "validation": {"coverage": rule.coverage, "precision": rule.precision, "examples": len(val_y)},
            "test": at_bar(test_conf, test_correct, rule.threshold),
        },
        "curve": [{"split": "test", **at_bar(test_conf, test_correct, b)} for b in bars],
        "note": note,
    }
    return ConfidenceFit(confidence, report)


def reliability_bins(
    probs: FloatArray, truth: npt.NDArray[np.int64], bins: int = ECE_BINS
) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, count) of each non-empty bin."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == truth
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    return [
        (float(confidence[which == b].mean()), float(correct[which == b].mean()), int((which == b).sum()))
        for b in range(bins)
        if (which == b).any()
    ]


def plot_reliability(
    raw: FloatArray, calibrated: FloatArray, truth: npt.NDArray[np.int64], out: Path, title: str
) -> Path:
    """A reliability diagram of the test split: accuracy against confidence per bin, raw and calibrated."""
    with saved_figure(out, (7, 6)) as (_, axes):
        axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
        for name, probs, marker in (("raw", raw, "o"), ("calibrated", calibrated, "s")):
            points = reliability_bins(probs, truth)
            ece = expected_calibration_error(probs, truth)
            axes.plot([p[0] for p in points], [p[1] for p in points], marker=marker, label=f"{name} (ECE {ece:.3f})")
        axes.set_xlabel("confidence (top probability)")
        axes.set_ylabel("accuracy")
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1.02)
        axes.set_title(title)
        axes.legend(loc="upper left")
    return out


def plot_coverage(confidence: FloatArray, correct: npt.NDArray[np.bool_], bar: float, out: Path, title: str) -> Path:
    """The test split's precision against coverage as the bar moves, with the chosen bar marked."""
    _, precision, coverage = curve(confidence, correct)
    chosen = at_bar(confidence, correct, bar)
    with saved_figure(out, (7, 6)) as (_, axes):
        axes.plot(coverage, precision, label="test split")
        axes.scatter([chosen["coverage"]], [chosen["precision"]], color="red", zorder=3,
                     label=f"chosen bar {bar:.3f}: coverage {chosen['coverage']:.1%}, "
                     f"precision {chosen['precision']:.1%}")  # fmt: skip
        axes.set_xlabel("coverage (share of answers called sure)")
        axes.set_ylabel("precision of the sure answers")
        axes.set_xlim(0, 1.01)
        axes.set_title(title)
        axes.legend(loc="lower left")
    return out


def write_plots(
    folder: Path,
    test: Sequence[Prediction],
    test_truth: Sequence[str],
    labels: LabelSet,
    confidence: ModelConfidence,
    title: str,
) -> tuple[Path, Path]:
    """The reliability diagram and the precision-coverage curve of the test split, into ``folder``."""
    index = {label: i for i, label in enumerate(labels)}
    raw = probabilities(test, labels)
    truth = np.asarray([index[t] for t in test_truth], dtype=np.int64)
    calibrated = scaled(raw, confidence.temperature)
    reliability = plot_reliability(raw, calibrated, truth, folder / RELIABILITY_PNG, title)
    correct = calibrated.argmax(axis=1) == truth
    scores = sure_scores(test, calibrated) if confidence.rule.score == "sure_score" else calibrated.max(axis=1)
    coverage = plot_coverage(scores, correct, confidence.rule.threshold, folder / COVERAGE_PNG, title)
    return reliability, coverage
