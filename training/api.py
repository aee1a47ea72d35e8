"""The importable training API: what ``python -m training`` and the /retrain job both call.

:func:`train` reads and checks the data (the livedoor corpus or a newsroom's own labelled articles, see
:mod:`training.dataset`), applies the fixed split, trains (BERT or linear) for the data's label set, evaluates on
the test split beside the TF-IDF + SVM baseline, writes the version folder (model, labels.json, metrics.json,
confusion PNG, model card), registers it, and promotes it only if it is not worse than the current model on the
same test split. Models of another label set or tested on other test articles are not compared: such a version is
promoted only with ``force``. Refused data and failed runs leave ``current`` untouched and no version folder behind.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.exceptions import DatasetError, ModelNotFoundError, NewsbotError, TrainingError
from common.labels import LIVEDOOR, LabelSet
from newsmodel import registry
from newsmodel.prediction import write_label_set
from store.trust import RECENT_MIN_EXAMPLES
from training.confidence import COVERAGE_PNG, RELIABILITY_PNG, ConfidenceFit, fit_confidence, write_plots
from training.corpus import CorpusArticle
from training.dataset import LabelledData, load_labelled
from training.evaluation import (
    CONFUSION_PNG,
    MODEL_CARD,
    compute_metrics,
    model_card,
    plot_confusion,
    write_metrics,
)
from training.examples import load_extra_examples
from training.fit import Clock, Fit, TrainingData, article_of
from training.kinds import TRAINED_KINDS
from training.options import (
    BertOptions,
    DataOptions,
    LinearOptions,
    RunOptions,
    TrainOptions,
    options_from_settings,
    train_options,
    trainer_arguments,
)
from training.progress import Progress, safe_reporter
from training.split import Split, load_or_create_split

__all__ = [
    "BertOptions",
    "DataOptions",
    "LinearOptions",
    "Progress",
    "RunOptions",
    "TrainOptions",
    "TrainOutcome",
    "evaluate",
    "options_from_settings",
    "prepare",
    "prepare_data",
    "read_data",
    "resolve_model",
    "train",
    "train_options",
    "trainer_arguments",
]

log = logging.getLogger(__name__)


@dataclass
class TrainOutcome:
    version: str
    path: Path
    promoted: bool
    reason: str
    metrics: dict[str, Any]  # test metrics: accuracy, macro_f1, per_class, confusion_matrix, baseline, …
    previous_version: str | None
    previous_metrics: dict[str, Any] | None
    confusion_png: Path
    extra_examples_used: int
    extra_examples_skipped: int
    train_seconds: float
    labels: LabelSet = LIVEDOOR  # the new version's labels, in label-id order, with their display names
    # The calibration's reliability diagram and the precision-coverage curve (test split), beside the confusion matrix.
    reliability_png: Path | None = None
    coverage_png: Path | None = None

    def summary(self) -> dict[str, Any]:
        """The one JSON object the CLI prints last."""
        keep = ("accuracy", "macro_f1", "examples", "baseline")
        return {
            "version": self.version,
            "path": str(self.path),
            "promoted": self.promoted,
            "reason": self.reason,
            "metrics": {k: self.metrics[k] for k in keep if k in self.metrics},
            "previous_version": self.previous_version,
            "labels": list(self.labels),
            "train_seconds": round(self.train_seconds, 1),
        }


def hardware() -> str:
    import torch

    if torch.cuda.is_available():
        names = {torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())}
        return f"{torch.cuda.device_count()} × GPU ({', '.join(sorted(names))})"
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()})"


def read_data(options: DataOptions) -> LabelledData:
    """Read and check the data (``options.data``) and its labels file; writes nothing."""
    return load_labelled(
        options.data,
        cache_dir=options.cache_dir,
        strip_leaks=not options.keep_leaks,
        encoding=options.data_encoding,
        labels_file=options.labels_file,
    )


def prepare_data(options: DataOptions) -> tuple[LabelledData, Split]:
    """Read and check the data, then apply (creating it first if needed) the fixed split."""
    data = read_data(options)
    return data, load_or_create_split(data.articles, options.split_path, options.split_seed)


def prepare(options: DataOptions) -> tuple[list[CorpusArticle], Split]:
    """Read the data and apply (creating it first if needed) the fixed split."""
    data, split = prepare_data(options)
    return data.articles, split


def _baseline(
    options: LinearOptions, labels: LabelSet, train: Sequence[CorpusArticle], test: Sequence[CorpusArticle]
) -> dict[str, Any]:
    from training.linear import fit_linear

    started = time.monotonic()
    texts = [article_of(a).text for a in train]
    model = fit_linear(texts, [a.slug for a in train], labels=labels.labels, c=options.linear_c)
    proba = model.predict_proba([article_of(a).text for a in test])
    predicted = [labels.labels[i] for i in proba.argmax(axis=1)]
    metrics = compute_metrics([a.slug for a in test], predicted, labels)
    return {
        "model": "tfidf-mecab-1-2gram+linear-svm",
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "per_class_f1": {slug: row["f1"] for slug, row in metrics["per_class"].items()},
        "train_seconds": round(time.monotonic() - started, 1),
    }


def _current_macro_f1(options: RunOptions, current: str, split: Split) -> tuple[float | None, dict[str, Any] | None]:
    """The current model's test macro-F1 on this split: from its metrics.json when measured on the same test
    articles, else measured now."""
    stored = registry.version_metrics(options.model_dir, current)
    if stored and stored.get("test_fingerprint") == split.test_fingerprint and "macro_f1" in stored:
        return float(stored["macro_f1"]), stored
    from newsmodel.loading import load_classifier

    try:
        path = registry.local_version(options.model_dir, current)
        classifier = load_classifier(path, current, device=options.device)
    except NewsbotError:
        log.warning("current model %s cannot be loaded; it does not block promotion", current, exc_info=True)
        return None, stored
    predictions = classifier.predict([article_of(a) for a in split.test])
    measured = compute_metrics([a.slug for a in split.test], [p.label for p in predictions], classifier.labels)
    return float(measured["macro_f1"]), {**measured, "test_fingerprint": split.test_fingerprint}


def _shown(labels: Sequence[str], most: int = 5) -> str:
    more = f", … (+{len(labels) - most})" if len(labels) > most else ""
    return f"{len(labels)}: " + ", ".join(labels[:most]) + more


def not_comparable(
    current: str, current_labels: LabelSet | None, stored: dict[str, Any] | None, labels: LabelSet, split: Split
) -> tuple[str, str] | None:
    """Why the new model cannot be compared with the current one (English, Japanese), or None when it can:
    another label set, or test metrics measured on other test articles (another test-split fingerprint)."""
    if current_labels is not None and not labels.same_labels(current_labels):
        return (
            f"the current model {current} sorts articles into other categories ({_shown(list(current_labels))}) "
            f"than the new one ({_shown(list(labels))}), so their test scores cannot be compared",
            f"現在のモデル {current} のカテゴリ ({_shown(list(current_labels))}) と新しいモデルのカテゴリ "
            f"({_shown(list(labels))}) が違うため、テストの成績を比べられません",
        )
    fingerprint = (stored or {}).get("test_fingerprint")
    if fingerprint is not None and fingerprint != split.test_fingerprint:
        return (
            f"the current model {current} was tested on other test articles (test split {fingerprint}, the new "
            f"one {split.test_fingerprint}: other data, or articles added), so their test scores cannot be compared",
            f"現在のモデル {current} は別のテスト記事で評価されている (テスト分割 {fingerprint}、新しいモデルは "
            f"{split.test_fingerprint}: データが違うか記事が追加された) ため、テストの成績を比べられません",
        )
    return None


def _decide(
    options: RunOptions, new_f1: float, split: Split, labels: LabelSet
) -> tuple[bool, str, str | None, dict[str, Any] | None]:
    current = registry.current_version(options.model_dir)
    if current is None or not registry.has_version(options.model_dir, current):
        return True, "no current model yet", current, None
    path = registry.local_version(options.model_dir, current)  # downloaded into the cache from an object store
    stored = registry.read_metrics(path)
    why_not = not_comparable(current, registry.labels_of(path), stored, labels, split)
    if why_not is not None:
        english, japanese = why_not
        if options.force:
            return True, f"forced (--force): {english}.\n強制的に採用しました: {japanese}。", current, stored
        why = (
            f"not promoted: {english} (use --force, /retrain force or the Promote anyway button to switch).\n"
            f"採用しませんでした: {japanese} (切り替えるには --force、/retrain force、"
            "または「それでも採用」ボタンを使ってください)。"
        )
        return False, why, current, stored
    current_f1, current_metrics = _current_macro_f1(options, current, split)
    if options.force:
        return True, f"forced (--force); current {current} had test macro-F1 {current_f1}", current, current_metrics
    if current_f1 is None:
        return True, f"current {current} could not be evaluated", current, current_metrics
    bar = current_f1 - options.promotion_tolerance
    if new_f1 >= bar:
        why = (
            f"test macro-F1 {new_f1:.4f} >= current {current} {current_f1:.4f} - tolerance "
            f"{options.promotion_tolerance}"
        )
        return True, why, current, current_metrics
    why = (
        f"not promoted: test macro-F1 {new_f1:.4f} < current {current} {current_f1:.4f} - tolerance "
        f"{options.promotion_tolerance} (use --force to promote anyway)"
    )
    return False, why, current, current_metrics


def load_data(options: DataOptions, clock: Clock) -> TrainingData:
    """Step 1: the data (refused here, before anything is written, when it is unusable), the fixed split and the
    extra examples."""
    clock.phase("data", f"reading the training data from {options.data}")
    labelled, split = prepare_data(options)
    extra = load_extra_examples(options.extra_examples, exclude=split.test, labels=labelled.labels)
    holdout = load_extra_examples(options.holdout_examples, labels=labelled.labels)
    recent = load_extra_examples(options.recent_examples, labels=labelled.labels)
    data = TrainingData(labelled, split, extra, holdout, recent)
    clock.phase(
        "data",
        f"{len(labelled.articles)} articles, {len(labelled.labels)} labels: train {len(split.train)} "
        f"(+{len(extra.articles)} extra, {extra.skipped} skipped), validation {len(split.validation)}, "
        f"test {len(split.test)}",
    )
    return data


def score_on_test(options: TrainOptions, data: TrainingData, fit: Fit, clock: Clock) -> dict[str, Any]:
    """Step 3: the test-split metrics of ``fit``'s predictions, with the baseline's beside them."""
    test = data.split.test
    metrics = compute_metrics([a.slug for a in test], fit.test_predictions, data.labels)
    metrics.update(
        {
            "model_type": options.run.model_type,
            "test_fingerprint": data.split.test_fingerprint,
            "validation": fit.best_validation,
            "train_seconds": round(fit.seconds, 1),
        }
    )
    if TRAINED_KINDS[options.run.model_type].is_baseline:
        metrics["baseline"] = {"model": "this model", "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}
    elif options.run.baseline:
        clock.phase("evaluate", "training the TF-IDF + SVM baseline on the same split")
        metrics["baseline"] = _baseline(options.linear, data.labels, data.train_set, test)
    return metrics


def calibrate(options: TrainOptions, version: str, data: TrainingData, folder: Path, clock: Clock) -> ConfidenceFit:
    """Step 3b: the saved model's calibration and "sure" rule, fitted on the validation split (its raw scores, as
    served from ``folder``), measured on the test split, written into ``folder`` as confidence.json with the
    reliability diagram and the precision-coverage curve (:mod:`training.confidence`)."""
    from newsmodel.confidence import write_confidence
    from newsmodel.loading import load_classifier

    clock.phase("calibrate", "calibrating on the validation split and choosing the sure bar")
    classifier = load_classifier(folder, version, device=options.run.device)
    try:
        validation = classifier.predict([article_of(a) for a in data.split.validation])
        test = classifier.predict([article_of(a) for a in data.split.test])
    finally:
        close = getattr(classifier, "close", None)
        if callable(close):
            close()
    validation_truth = [a.slug for a in data.split.validation]
    test_truth = [a.slug for a in data.split.test]
    fitted = fit_confidence(
        validation, validation_truth, test, test_truth, data.labels, target_precision=options.run.target_precision
    )
    if fitted.report["note"]:
        log.warning("%s", fitted.report["note"])
    write_confidence(folder, fitted.confidence)
    title = f"{version} ({options.run.model_type}), test split"
    write_plots(folder, test, test_truth, data.labels, fitted.confidence, title)
    return fitted


def write_version(
    options: TrainOptions, version: str, folder: Path, data: TrainingData, fit: Fit, metrics: dict[str, Any]
) -> None:
    """Step 4: beside the saved model, labels.json, metrics.json, the confusion matrix PNG, the model card and
    training.json."""
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    split = data.split
    split_facts = {
        "seed": options.data.split_seed,
        "file": str(options.data.split_path),
        "train": len(split.train),
        "validation": len(split.validation),
        "test": len(split.test),
        "extra_examples": len(data.extra.articles),
        "extra_examples_skipped": data.extra.skipped,
        "test_fingerprint": split.test_fingerprint,
        "strip_leaks": not options.data.keep_leaks,
    }
    machine = hardware()
    kind = TRAINED_KINDS[options.run.model_type]
    title = f"{version} ({kind.name}) acc {metrics['accuracy']:.4f} macro-F1 {metrics['macro_f1']:.4f}"
    write_label_set(folder, data.labels)
    plot_confusion(metrics["confusion_matrix"], folder / CONFUSION_PNG, title, data.labels)
    write_metrics(folder, metrics)
    dataset = data.data.facts()
    card = model_card(
        version=version,
        model_type=kind.name,
        description=kind.description,
        front_matter=kind.card_front_matter,
        base_model=fit.base_model,
        data=options.data.data,
        labels=data.labels,
        dataset=dataset,
        split=split_facts,
        hyperparameters=fit.hyperparameters,
        metrics=metrics,
        created_at=created_at,
        train_seconds=fit.seconds,
        hardware=machine,
    )
    (folder / MODEL_CARD).write_text(card, encoding="utf-8")
    info = {
        "version": version,
        "model_type": kind.name,
        "created_at": created_at,
        "base_model": fit.base_model,
        "data": options.data.data,
        "dataset": dataset,
        "labels": data.labels.to_dict(),
        "split": split_facts,
        "hyperparameters": fit.hyperparameters,
        "hardware": machine,
        "run_dir": None if fit.run_dir is None else str(fit.run_dir),
        "options": options.for_log(),
        "trainer_args": fit.trainer_args,
    }
    (folder / registry.INFO_FILE).write_text(json.dumps(info, indent=2, ensure_ascii=False), encoding="utf-8")


@dataclass(frozen=True)
class _Registered:
    path: Path
    promoted: bool
    reason: str
    previous_version: str | None
    previous_metrics: dict[str, Any] | None


def score_holdout(options: RunOptions, version: str, staging: Path, data: TrainingData) -> dict[str, Any] | None:
    """The candidate's and the current model's accuracy on the editor-confirmed holdout (records editors vouched
    for, never trained on); None without a holdout, or without a current model of the same labels to compare."""
    return _against_current(options, version, staging, data.holdout.articles)


# The most recent editor-labelled records score a candidate only when there are at least RECENT_MIN_EXAMPLES (30,
# store.trust): fewer would refuse or pass a candidate on noise (at 30, two binomial standard errors of a 90 %
# accuracy are 11 points).
RECENT_SIGMAS = 2.0


def score_recent(options: RunOptions, version: str, staging: Path, data: TrainingData) -> dict[str, Any] | None:
    """The candidate's and the current model's accuracy on the most recent editor-labelled records (labelled after
    the training data, never trained on): ``used`` False (with the count) under RECENT_MIN_EXAMPLES; None without
    any, or without a current model of the same labels to compare."""
    articles = data.recent.articles
    if not articles:
        return None
    if len(articles) < RECENT_MIN_EXAMPLES:
        return {"examples": len(articles), "used": False, "min_examples": RECENT_MIN_EXAMPLES}
    scored = _against_current(options, version, staging, articles)
    return None if scored is None else {**scored, "used": True, "min_examples": RECENT_MIN_EXAMPLES}


def _against_current(
    options: RunOptions, version: str, staging: Path, articles: Sequence[CorpusArticle]
) -> dict[str, Any] | None:
    """The candidate's and the current model's accuracy on ``articles``; None without them, or without a current
    model of the same labels to compare."""
    current = registry.current_version(options.model_dir)
    if not articles or current is None or not registry.has_version(options.model_dir, current):
        return None
    from newsmodel.loading import load_classifier

    gold = [a.slug for a in articles]
    inputs = [article_of(a) for a in articles]
    candidate = load_classifier(staging, version, device=options.device)
    try:
        path = registry.local_version(options.model_dir, current)
        serving = load_classifier(path, current, device=options.device)
    except NewsbotError:
        log.warning("current model %s cannot be loaded; the holdout does not block promotion", current, exc_info=True)
        return None
    if not serving.labels.same_labels(candidate.labels):
        return None

    def accuracy(predicted: Sequence[str]) -> float:
        return sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold)

    return {
        "examples": len(gold),
        "accuracy": accuracy([p.label for p in candidate.predict(inputs)]),
        "current_version": current,
        "current_accuracy": accuracy([p.label for p in serving.predict(inputs)]),
    }


def _holdout_refusal(options: RunOptions, holdout: dict[str, Any] | None) -> str | None:
    """Why the candidate is refused on the editor-confirmed holdout (English and Japanese), or None."""
    if holdout is None or options.force:
        return None
    new, current = float(holdout["accuracy"]), float(holdout["current_accuracy"])
    if new >= current - options.promotion_tolerance:
        return None
    return (
        f"not promoted: on the {holdout['examples']} editor-confirmed records held out of training, accuracy "
        f"{new:.4f} < current {holdout['current_version']} {current:.4f} - tolerance {options.promotion_tolerance} "
        "(the corrections may steer the model away from what editors confirmed; use --force to promote anyway).\n"
        f"採用しませんでした: 学習に使わずに残した編集者確認済みの {holdout['examples']} 件で、正解率 {new:.4f} が"
        f"現在のモデル {holdout['current_version']} の {current:.4f} より低いためです。"
    )


def recent_margin(current_accuracy: float, examples: int) -> float:
    """RECENT_SIGMAS binomial standard errors of ``current_accuracy`` measured on ``examples`` articles."""
    p = min(max(current_accuracy, 0.0), 1.0)
    return RECENT_SIGMAS * math.sqrt(max(p * (1 - p), 1e-4) / max(examples, 1))


def _recent_refusal(options: RunOptions, recent: dict[str, Any] | None) -> str | None:
    """Why the candidate is refused on the most recent editor-labelled records (English and Japanese), or None:
    clearly worse = below the current model's accuracy by more than the promotion tolerance and more than
    :func:`recent_margin`."""
    if recent is None or not recent.get("used") or options.force:
        return None
    new, current, n = float(recent["accuracy"]), float(recent["current_accuracy"]), int(recent["examples"])
    margin = max(options.promotion_tolerance, recent_margin(current, n))
    if new >= current - margin:
        return None
    return (
        f"not promoted: on the {n} most recent editor-labelled records (after the training data, never trained on), "
        f"accuracy {new:.4f} < current {recent['current_version']} {current:.4f} - margin {margin:.4f} "
        "(use --force to promote anyway).\n"
        f"採用しませんでした: 学習データより新しい編集者のラベル {n} 件で、正解率 {new:.4f} が"
        f"現在のモデル {recent['current_version']} の {current:.4f} より明らかに低いためです。"
    )


def register_version(
    options: RunOptions,
    version: str,
    staging: Path,
    data: TrainingData,
    macro_f1: float,
    clock: Clock,
    holdout: dict[str, Any] | None = None,
    recent: dict[str, Any] | None = None,
) -> _Registered:
    """Step 5: give the staging folder its version name; make it current if it is not worse than the current
    (of the same label set, on the same test split, and on the editor-confirmed ``holdout``)."""
    clock.phase("register", f"registering {version} in {options.model_dir}")
    promote, reason, previous, previous_metrics = _decide(options, macro_f1, data.split, data.labels)
    refusal = (_holdout_refusal(options, holdout) or _recent_refusal(options, recent)) if promote else None
    if refusal is not None:
        promote, reason = False, refusal
    path = registry.register(options.model_dir, staging, version)
    if promote:
        registry.promote(options.model_dir, version)
    return _Registered(path, promote, reason, previous, previous_metrics)


def train(options: TrainOptions, progress: Callable[[Progress], None] | None = None) -> TrainOutcome:
    """Train, evaluate, register and (if good enough) promote a new version. See the module docstring."""
    clock = Clock(safe_reporter(progress))
    version = registry.new_version_name()
    staging: Path | None = None
    kind = TRAINED_KINDS[options.run.model_type]
    try:
        data = load_data(options.data, clock)
        staging = registry.staging_dir(options.run.model_dir, version)
        fit = kind.fit(options, data, staging, options.run_root / version, clock)
        metrics = score_on_test(options, data, fit, clock)
        metrics["confidence"] = calibrate(options, version, data, staging, clock).report
        write_version(options, version, staging, data, fit, metrics)
        holdout = score_holdout(options.run, version, staging, data)
        if holdout is not None:
            metrics["editor_holdout"] = holdout
        recent = score_recent(options.run, version, staging, data)
        if recent is not None:
            metrics["recent_editor_labels"] = recent
        if holdout is not None or recent is not None:
            write_metrics(staging, metrics)
        f1 = float(metrics["macro_f1"])
        registered = register_version(options.run, version, staging, data, f1, clock, holdout, recent)
        staging = None
    except NewsbotError:
        raise
    except Exception as exc:
        raise TrainingError(f"training failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if staging is not None:
            registry.discard(staging)
    done = {"test_accuracy": metrics["accuracy"], "test_macro_f1": metrics["macro_f1"]}
    clock.phase("done", f"{version}: {registered.reason}", done)
    return TrainOutcome(
        version=version,
        path=registered.path,
        promoted=registered.promoted,
        reason=registered.reason,
        metrics=metrics,
        previous_version=registered.previous_version,
        previous_metrics=registered.previous_metrics,
        confusion_png=registered.path / CONFUSION_PNG,
        reliability_png=registered.path / RELIABILITY_PNG,
        coverage_png=registered.path / COVERAGE_PNG,
        extra_examples_used=len(data.extra.articles),
        extra_examples_skipped=data.extra.skipped,
        train_seconds=fit.seconds,
        labels=data.labels,
    )


def resolve_model(model_dir: registry.ModelDir, model: str | None) -> tuple[Path, str]:
    """A model folder and its version from ``--model`` (a folder or a version name), default the current one."""
    if model is None:
        return registry.resolve_serving_path(model_dir, None)
    as_path = Path(model)
    if as_path.is_dir():
        return as_path, as_path.resolve().name
    if registry.has_version(model_dir, model):
        return registry.local_version(model_dir, model), model
    raise ModelNotFoundError(f"no model folder or version {model!r} (registry: {model_dir})")


def evaluate(data_options: DataOptions, run: RunOptions, model: str | None = None) -> dict[str, Any]:
    """Test-split metrics of a model (folder or version in ``run.model_dir``; default the current one) on the fixed
    split of ``data_options``' data."""
    from newsmodel.loading import load_classifier

    path, version = resolve_model(run.model_dir, model)
    classifier = load_classifier(path, version, device=run.device)
    data, split = prepare_data(data_options)
    if not classifier.labels.same_labels(data.labels):
        raise DatasetError(
            data_options.data,
            f"モデル {version} のカテゴリ ({list(classifier.labels)}) が"
            f"データのカテゴリ ({list(data.labels)}) と違います。",
            f"model {version} has other labels ({list(classifier.labels)}) than the data ({list(data.labels)}).",
        )
    predictions = classifier.predict([article_of(a) for a in split.test])
    metrics = compute_metrics([a.slug for a in split.test], [p.label for p in predictions], classifier.labels)
    metrics.update({"version": version, "path": str(path), "test_fingerprint": split.test_fingerprint})
    return metrics
