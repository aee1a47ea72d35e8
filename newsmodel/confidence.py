"""Confidence that means something: a version's calibration and its "sure" rule, and the one decision made from them.

Training fits both on the validation split (:mod:`training.confidence`) and writes them into the version folder as
``confidence.json``:

- **calibration**: a temperature ``T`` applied to the model's probabilities, ``softmax(log p / T)``. For a BERT
  this is temperature scaling of its logits; for the linear model it rescales its sigmoid-calibrated one-vs-rest
  scores the same way. Served scores are these calibrated probabilities.
- **rule**: an answer is *sure* when its sure score (:attr:`~newsmodel.prediction.Prediction.sure_score`: the
  linear model's support, a BERT's calibrated top probability) reaches ``threshold``, chosen on the
  validation split as the lowest bar whose answers above it were right at least ``target_precision`` of the time
  (the ``coverage`` and ``precision`` it reached are kept beside it).

:func:`judge` is the decision everywhere (the worker's replies, reactions and cross-posts, and
``python -m training predict``): ``CONFIDENCE_THRESHOLD``, when set, overrides the model's own bar; a folder
without ``confidence.json`` (a model trained before it) is served with raw scores and the bar
:data:`DEFAULT_THRESHOLD`, and marked so (``ModelConfidence.calibrated`` is False). Nothing here ever blocks an
answer: an unreadable file counts as absent, and is logged.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from newsmodel.prediction import Prediction

log = logging.getLogger(__name__)

CONFIDENCE_FILE = "confidence.json"
FORMAT_VERSION = 1
# The bar of a model without its own rule (and of a configured fallback), as before calibration existed.
DEFAULT_THRESHOLD = 0.5
# Where a served answer's bar came from: the model's own rule, the CONFIDENCE_THRESHOLD setting, or the default.
RuleSource = Literal["validation", "setting", "default"]
# What a rule compares with its bar: the answer's sure score (the model's own rule), or its calibrated top
# probability (CONFIDENCE_THRESHOLD, and the default bar of a model without a rule, as before).
RuleScore = Literal["sure_score", "confidence"]
_FLOOR = 1e-12


def temperature_scaled(probabilities: Sequence[float], temperature: float) -> list[float]:
    """``softmax(log p / T)``: the same ranking, sharper (T < 1) or softer (T > 1); T = 1 changes nothing."""
    if temperature == 1.0:
        return list(probabilities)
    logs = [math.log(max(p, _FLOOR)) / temperature for p in probabilities]
    top = max(logs)
    exps = [math.exp(v - top) for v in logs]
    total = sum(exps)
    return [e / total for e in exps]


@dataclass(frozen=True, slots=True)
class Rule:
    """When an answer counts as sure: its :attr:`~newsmodel.prediction.Prediction.sure_score` (the support where the
    model's kind gives one, else its calibrated top probability) is at least ``threshold``."""

    threshold: float
    source: RuleSource
    score: RuleScore = "sure_score"
    target_precision: float | None = None  # what the validation split was asked for
    coverage: float | None = None  # share of validation answers it calls sure
    precision: float | None = None  # share of those that were right
    examples: int | None = None  # validation answers it was chosen on

    def sure(self, prediction: Prediction) -> bool:
        value = prediction.sure_score if self.score == "sure_score" else prediction.confidence
        return value >= self.threshold


@dataclass(frozen=True, slots=True)
class ModelConfidence:
    """A version's calibration and rule, as read from its ``confidence.json`` (or the defaults without one)."""

    temperature: float = 1.0
    rule: Rule = field(default_factory=lambda: Rule(DEFAULT_THRESHOLD, "default", "confidence"))
    calibrated: bool = False  # the folder had a calibration (False: an older model, served as before)
    ece_before: float | None = None
    ece_after: float | None = None
    note: str = ""  # why the rule fell back to the configured threshold, if it did

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "calibration": {"method": "temperature", "temperature": self.temperature},
            "ece_before": self.ece_before,
            "ece_after": self.ece_after,
            "rule": asdict(self.rule),
            "note": self.note,
        }

    def with_override(self, threshold: float | None) -> ModelConfidence:
        """This confidence with CONFIDENCE_THRESHOLD's bar instead of the model's own, when it is set."""
        if threshold is None:
            return self
        return replace(self, rule=Rule(threshold, "setting", "confidence"))


def write_confidence(folder: Path, confidence: ModelConfidence) -> Path:
    path = folder / CONFIDENCE_FILE
    path.write_text(json.dumps(confidence.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _optional_float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def read_confidence(folder: Path) -> ModelConfidence:
    """The folder's calibration and rule; the defaults (uncalibrated, bar :data:`DEFAULT_THRESHOLD`) when it has no
    readable ``confidence.json``."""
    path = folder / CONFIDENCE_FILE
    if not path.is_file():
        return ModelConfidence()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        temperature = float(data["calibration"]["temperature"])
        raw = dict(data["rule"])
        threshold = float(raw["threshold"])
        source, score = raw.get("source"), raw.get("score")
        if not (0.0 < temperature < 1e3 and 0.0 <= threshold <= 1.0) or source not in ("validation", "default"):
            raise ValueError(f"temperature {temperature}, threshold {threshold}, source {source!r}")
        if score not in ("sure_score", "confidence"):
            raise ValueError(f"rule score {score!r}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s is not usable (%s): serving raw scores with the default bar", path, exc)
        return ModelConfidence()
    examples = raw.get("examples")
    rule = Rule(
        threshold=threshold,
        source=source,
        score=score,
        target_precision=_optional_float(raw.get("target_precision")),
        coverage=_optional_float(raw.get("coverage")),
        precision=_optional_float(raw.get("precision")),
        examples=int(examples) if isinstance(examples, int) else None,
    )
    return ModelConfidence(
        temperature=temperature,
        rule=rule,
        calibrated=True,
        ece_before=_optional_float(data.get("ece_before")),
        ece_after=_optional_float(data.get("ece_after")),
        note=str(data.get("note") or ""),
    )


def calibrate(prediction: Prediction, temperature: float) -> Prediction:
    labels = list(prediction.scores)
    scaled = temperature_scaled([prediction.scores[label] for label in labels], temperature)
    return Prediction(dict(zip(labels, scaled, strict=True)), support=prediction.support)


def judge(predictions: Sequence[Prediction], confidence: ModelConfidence) -> list[Prediction]:
    """The served answers: calibrated scores and ``unsure`` (with the bar it was judged against) for each raw
    prediction of the model. The one decision the bot and ``python -m training predict`` make."""
    rule = confidence.rule
    judged = []
    for prediction in predictions:
        calibrated = calibrate(prediction, confidence.temperature)
        judged.append(replace(calibrated, unsure=not rule.sure(calibrated), threshold=rule.threshold))
    return judged
