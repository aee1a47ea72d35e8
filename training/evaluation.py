"""Test-split metrics, the confusion-matrix picture, and the model card written into a version folder."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common.labels import LabelSet

CONFUSION_PNG = "confusion_matrix.png"
MODEL_CARD = "README.md"


def compute_metrics(
    true_slugs: Sequence[str], predicted_slugs: Sequence[str], label_set: Iterable[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix (rows = truth), over
    the model's labels ``label_set`` in label-id order (also a label without test articles counts in macro-F1)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    labels = list(label_set)
    precision, recall, f1, support = precision_recall_fscore_support(
        true_slugs, predicted_slugs, labels=labels, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(true_slugs, predicted_slugs)),
        "macro_f1": float(f1_score(true_slugs, predicted_slugs, labels=labels, average="macro", zero_division=0)),
        "examples": len(true_slugs),
        "per_class": {
            slug: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, slug in enumerate(labels)
        },
        "confusion_matrix": confusion_matrix(true_slugs, predicted_slugs, labels=labels).tolist(),
        "labels": labels,
    }


def axis_names(labels: LabelSet) -> list[str]:
    """The confusion matrix's tick labels: each label if it is ASCII, else its English name if that is, else
    ``#<id>`` (the plot's fonts may lack Japanese glyphs; the model card lists ``#<id>`` beside each label)."""
    names = []
    for i, label in enumerate(labels):
        english = labels.en(label)
        names.append(label if label.isascii() else english if english.isascii() else f"#{i}")
    return names


@contextmanager
def saved_figure(out: Path, size: tuple[float, float]) -> Iterator[tuple[Any, Any]]:
    """A new figure and its axes (Agg backend, 100 dpi) to draw on; written to ``out`` when the block ends, closed
    either way. Text is drawn as plain text, never as mathtext or TeX: labels and titles come from a newsroom's
    data (``$\\nocommand$`` would fail only here, after the whole fit)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
        figure, axes = plt.subplots(figsize=size, dpi=100)
        try:
            yield figure, axes
            figure.tight_layout()
            figure.savefig(out)
        finally:
            plt.close(figure)


def plot_confusion(matrix: Sequence[Sequence[int]], out: Path, title: str, labels: LabelSet) -> Path:
    """A confusion-matrix PNG over ``labels``, with ASCII names on the axes (:func:`axis_names`), drawn as plain
    text (no mathtext, no TeX)."""
    ticks = axis_names(labels)
    height = min(24.0, max(8.0, 2.6 + 0.6 * len(ticks)))  # 9 × 8 inches up to 9 labels, larger for more
    with saved_figure(out, (height + 1, height)) as (figure, axes):
        image = axes.imshow(matrix, cmap="Blues")
        figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
        axes.set_xticks(range(len(ticks)), labels=ticks, rotation=45, ha="right")
        axes.set_yticks(range(len(ticks)), labels=ticks)
        axes.set_xlabel("predicted")
        axes.set_ylabel("true")
        axes.set_title(title)
        peak = max((max(row) for row in matrix), default=0) or 1
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                colour = "white" if value > peak / 2 else "black"
                axes.text(j, i, str(value), ha="center", va="center", color=colour, fontsize=9)
    return out


def write_metrics(folder: Path, metrics: dict[str, Any]) -> Path:
    path = folder / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _metric_row(name: str, metrics: dict[str, Any] | None) -> str:
    if not metrics:
        return f"| {name} | – | – |"
    return f"| {name} | {metrics['accuracy']:.4f} | {metrics['macro_f1']:.4f} |"


def confidence_section(report: dict[str, Any] | None) -> str:
    """The model card's (and the /retrain report's) account of the calibration and the sure bar, from
    ``metrics.json``'s ``confidence`` (:func:`training.confidence.fit_confidence`); "" without one."""
    if not report:
        return ""
    ece = report["ece"]
    rule = report["rule"]
    test = rule["test"]
    rows = "\n".join(
        f"| {row['threshold']:.4f}{' (chosen)' if row['threshold'] == round(rule['threshold'], 6) else ''} "
        f"| {row['coverage']:.1%} | {row['precision']:.2%} | {row['sure']} |"
        for row in report["curve"]
    )
    note = f"\n> {report['note']}\n" if report.get("note") else ""
    return (
        "## Confidence\n\n"
        f"Calibrated on the validation split by temperature scaling (T = {report['temperature']:.3f}). "
        f"Expected calibration error ({report['ece_bins']} bins), test split: {ece['test']['before']:.4f} before, "
        f"{ece['test']['after']:.4f} after (validation: {ece['validation']['before']:.4f} → "
        f"{ece['validation']['after']:.4f}).\n\n"
        f"An answer is **sure** when its calibrated top probability is at least **{rule['threshold']:.4f}** "
        f"(source: {rule['source']}, for a target precision of {rule['target_precision']}); on the validation "
        f"split it covered {rule['validation']['coverage']:.1%} of the answers at precision "
        f"{rule['validation']['precision']:.2%}, on the test split {test['coverage']:.1%} at "
        f"{test['precision']:.2%}. Only sure answers get reactions, watched-channel replies and cross-posts.\n"
        f"{note}\n"
        "| bar | test coverage | test precision | sure answers |\n|---|---|---|---|\n"
        f"{rows}\n\n"
        "![reliability diagram](reliability.png)\n\n![precision-coverage curve](precision_coverage.png)\n\n"
    )


def model_card(
    *,
    version: str,
    model_type: str,
    description: str,
    front_matter: str,
    base_model: str | None,
    data: str,
    labels: LabelSet,
    dataset: dict[str, Any],
    split: dict[str, Any],
    hyperparameters: dict[str, Any],
    metrics: dict[str, Any],
    created_at: str,
    train_seconds: float,
    hardware: str,
) -> str:
    """The version folder's README.md: what was trained, on what, how, and how well. ``description`` and
    ``front_matter`` are the kind's (:data:`training.kinds.TRAINED_KINDS`)."""
    per_class = metrics.get("per_class", {})
    class_rows = "\n".join(
        f"| {i} | `{label}` | {labels.display(label)} | {per_class[label]['precision']:.4f} "
        f"| {per_class[label]['recall']:.4f} | {per_class[label]['f1']:.4f} | {per_class[label]['support']} |"
        for i, label in enumerate(labels)
        if label in per_class
    )
    params = "\n".join(f"| `{key}` | `{value}` |" for key, value in sorted(hyperparameters.items()))
    livedoor = dataset.get("kind") == "livedoor"
    markers = f", category markers stripped: {split.get('strip_leaks')}" if livedoor else ""
    what = "the nine livedoor news corpus categories" if livedoor else f"{len(labels)} categories"
    source = (
        "livedoor news corpus ldcc-20140209, CC BY-ND 2.1 JP"
        if livedoor
        else f"{dataset.get('kind')}, {dataset.get('articles')} articles, "
        f"{dataset.get('duplicates_skipped', 0)} duplicates skipped "
        f"({dataset.get('conflicting_duplicates', 0)} under another label)"
    )
    return (
        front_matter + f"# newsbot model {version}\n\n"
        f"A {description} that sorts Japanese news articles into {what} "
        f"({', '.join(f'`{label}`' for label in labels)}); display names in `labels.json`.\n\n"
        f"- model type: `{model_type}`\n"
        f"- base model: `{base_model or '–'}`\n"
        f"- trained: {created_at} in {train_seconds:.0f} s on {hardware}\n"
        f"- data: `{data}` ({source}){markers}\n"
        f"- split: stratified 8:1:1, seed {split.get('seed')}; train {split.get('train')} "
        f"(+{split.get('extra_examples', 0)} extra examples), validation {split.get('validation')}, "
        f"test {split.get('test')} (test fingerprint `{split.get('test_fingerprint')}`)\n\n"
        "## Test metrics\n\n"
        "| model | accuracy | macro-F1 |\n|---|---|---|\n"
        f"{_metric_row('this model', metrics)}\n"
        f"{_metric_row('baseline: TF-IDF + linear SVM, same split', metrics.get('baseline'))}\n\n"
        "| id | label | name | precision | recall | F1 | support |\n|---|---|---|---|---|---|---|\n"
        f"{class_rows}\n\n"
        f"![confusion matrix]({CONFUSION_PNG})\n\n"
        f"{confidence_section(metrics.get('confidence'))}"
        "## Hyper-parameters\n\n| name | value |\n|---|---|\n"
        f"{params}\n"
    )
