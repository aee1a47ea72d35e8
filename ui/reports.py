"""What the training and admin jobs say in Slack: model metrics, progress, results, status. Pure text."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from common.labels import LabelSet
from common.mrkdwn import code, literal
from store.live import LIVE_DAYS, LiveFigures, drift_margin, drifted
from ui.progress import PHASES, duration


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def metric(metrics: Mapping[str, Any] | None, *names: str) -> float | None:
    """The first of ``names`` present in ``metrics`` as a number (``eval_`` / ``test_`` prefixes tolerated)."""
    for name in names:
        for key in (name, f"eval_{name}", f"test_{name}"):
            value = _number((metrics or {}).get(key))
            if value is not None:
                return value
    return None


def metrics_line(metrics: Mapping[str, Any] | None) -> str:
    accuracy = metric(metrics, "accuracy")
    macro_f1 = metric(metrics, "macro_f1", "f1_macro")
    if accuracy is None and macro_f1 is None:
        return "評価なし / no metrics"
    parts = []
    if accuracy is not None:
        parts.append(f"accuracy {accuracy:.4f}")
    if macro_f1 is not None:
        parts.append(f"macro-F1 {macro_f1:.4f}")
    return ", ".join(parts)


def progress_text(
    *,
    phase: str,
    step: int,
    total_steps: int,
    epoch: float | None,
    elapsed_s: float | None,
    eta_s: float | None,
    metrics: Mapping[str, Any] | None,
    message: str = "",
    header: str = "",
) -> str:
    lines = [header] if header else []
    lines.append(f"*{literal(PHASES.get(phase, phase))}*" + (f" — {literal(message)}" if message else ""))
    detail = []
    if epoch is not None:
        detail.append(f"epoch {epoch:.2f}")
    if total_steps:
        detail.append(f"step {step}/{total_steps} ({step / total_steps:.0%})")
    detail.append(f"経過 / elapsed {duration(elapsed_s)}")
    if eta_s is not None:
        detail.append(f"残り / ETA {duration(eta_s)}")
    lines.append(" · ".join(detail))
    if metrics:
        lines.append(f"検証 / validation: {metrics_line(metrics)}")
    return "\n".join(lines)


def version_line(version: str, created_at: datetime | None, model_type: str, metrics: Mapping[str, Any] | None) -> str:
    when = created_at.strftime("%Y-%m-%d %H:%M UTC") if created_at else "—"
    return f"{code(version)} ({literal(model_type)}, {when}): {metrics_line(metrics)}"


# Labels named in one line at most; the others are counted.
LISTED_LABELS = 20


def labels_line(labels: LabelSet, heading: str = "ラベル / Labels") -> str:
    """``Labels (4): 政治 / Politics, …``: each label's display names (the label itself without), escaped."""
    names = [literal(labels.display(label)) for label in list(labels)[:LISTED_LABELS]]
    more = len(labels) - len(names)
    return f"{heading} ({len(labels)}): " + ", ".join(names) + (f", … (+{more})" if more else "")


def confidence_line(facts: Mapping[str, Any] | None) -> str:
    """The served model's sure rule in one line (the worker's ``confidence`` facts): its bar and where it came from,
    the coverage and precision it reached on the test split, the ECE before and after calibration; an older model
    without calibration is said to be one. "" when nothing is known."""
    if not facts:
        return ""
    bar = _number(facts.get("threshold"))
    if bar is None:
        return ""
    source = facts.get("source")
    if source == "setting":
        text = f"確信の基準 / Sure bar: {bar:.3f} (CONFIDENCE_THRESHOLD の設定 / set by CONFIDENCE_THRESHOLD)"
    elif source == "validation":
        text = f"確信の基準 / Sure bar: {bar:.3f} (検証データで決定 / earned on the validation split"
        target = _number(facts.get("target_precision"))
        text += f", 目標精度 / target precision {target:.0%})" if target is not None else ")"
        coverage, precision = _number(facts.get("coverage")), _number(facts.get("precision"))
        if coverage is not None and precision is not None:
            text += f"; テスト / test: {coverage:.1%} を確信 / sure, 精度 / precision {precision:.1%}"
    else:
        text = f"確信の基準 / Sure bar: {bar:.3f} (既定 / default)"
    if not facts.get("calibrated"):
        text += "; :warning: 較正なしの古いモデル / older model without calibration (raw scores)"
    else:
        before, after = _number(facts.get("ece_before")), _number(facts.get("ece_after"))
        if before is not None and after is not None:
            text += f"; ECE {before:.3f} → {after:.3f}"
    return text


def live_line(figures: LiveFigures) -> str:
    """A served version's live figures of the last 7 days in one line: accuracy over the answers editors confirmed
    or corrected (with their count), the share of unsure answers, the share of editors' labels outside the model's
    labels."""
    days = f"実測 / Live, {LIVE_DAYS} 日 / days"
    if figures.answered == 0 and figures.labelled == 0:
        return f"{days}: まだ回答なし / no answers yet"
    accuracy = "—" if figures.accuracy is None else f"{figures.accuracy:.1%}"
    unsure = "—" if figures.unsure_share is None else f"{figures.unsure_share:.1%}"
    outside = "—" if figures.outside_share is None else f"{figures.outside_share:.1%}"
    return (
        f"{days}: 正解率 / accuracy {accuracy} (編集者の確認・訂正 {figures.labelled} 件 / "
        f"{figures.labelled} confirmed or corrected by editors); 自信なし / unsure {unsure} of {figures.answered}"
        f" answers; ラベル外 / outside the model's labels {outside}"
    )


def drift_warning(figures: LiveFigures, test_accuracy: float | None) -> str:
    """The drift warning with its numbers when the live accuracy is clearly below the test accuracy
    (:func:`store.live.drifted`), else ""."""
    if test_accuracy is None or figures.accuracy is None or not drifted(figures, test_accuracy):
        return ""
    margin = drift_margin(test_accuracy, figures.labelled)
    return (
        f":warning: *精度の低下 / Drift*: 実測の正解率 / live accuracy {figures.accuracy:.1%}"
        f" ({figures.labelled} 件 / answers) < テスト / test {test_accuracy:.1%} − {margin:.1%}"
        " (二項誤差の2倍 / two binomial standard errors). 再学習を検討してください。/ Consider retraining."
    )
