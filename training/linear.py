"""Fitting and saving the linear model: TF-IDF over MeCab words (unigrams + bigrams) and a linear SVM with
calibrated probabilities.

It is both the baseline every evaluation reports beside the BERT's, and a servable model kind
(``--model-type linear``) that trains in well under a minute on a CPU. It is saved without pickle (see
:mod:`newsmodel.linear`, which reads and serves it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common.labels import SLUGS
from newsmodel.linear import (
    FORMAT_VERSION,
    LINEAR_CONFIG,
    MODEL_TYPE,
    VOCABULARY_FILE,
    WEIGHTS_FILE,
    LinearModel,
    features,
)
from training.fit import Clock, Fit, TrainingData, article_of
from training.options import TrainOptions


def fit_linear(
    texts: Sequence[str],
    slugs: Sequence[str],
    *,
    labels: Sequence[str] = SLUGS,
    c: float = 1.0,
    seed: int = 42,
) -> LinearModel:
    """Fit TF-IDF + LinearSVC with 5-fold sigmoid calibration (fewer folds when a class is that small).

    ``slugs`` are the texts' labels; ``labels`` the model's, in label-id order (livedoor's nine by default).
    With two labels scikit-learn fits one separating direction; it is stored as two opposite one-vs-rest rows
    whose calibrated scores sum to one, so serving computes exactly scikit-learn's binary probabilities.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    order = list(labels)
    unknown = sorted(set(slugs) - set(order))
    if unknown:
        raise ValueError(f"training examples of labels the model does not have: {unknown}")
    ids = np.asarray([order.index(s) for s in slugs])
    missing = sorted(set(range(len(order))) - set(ids.tolist()))
    if missing:
        raise ValueError(f"every category needs training examples; none for {[order[i] for i in missing]}")
    min_df = 2 if len(texts) >= 200 else 1
    vectorizer = TfidfVectorizer(analyzer=features, sublinear_tf=True, min_df=min_df, dtype=np.float64)
    matrix = vectorizer.fit_transform(texts)
    folds = int(min(5, np.bincount(ids).min()))
    svm = LinearSVC(C=c, random_state=seed)
    if folds >= 2:
        calibrated = CalibratedClassifierCV(svm, method="sigmoid", cv=folds, ensemble=False).fit(matrix, ids)
        pair = calibrated.calibrated_classifiers_[0]
        fitted, calibrators = pair.estimator, pair.calibrators
        sigmoid_a = np.asarray([cal.a_ for cal in calibrators], dtype=np.float64)
        sigmoid_b = np.asarray([cal.b_ for cal in calibrators], dtype=np.float64)
    else:  # one example in some class: no calibration possible; a plain logistic link on the SVM scores
        fitted = svm.fit(matrix, ids)
        rows = len(fitted.coef_)
        sigmoid_a, sigmoid_b = np.full(rows, -1.0), np.zeros(rows)
    coef = np.asarray(fitted.coef_, dtype=np.float64)
    intercept = np.asarray(fitted.intercept_, dtype=np.float64)
    if len(order) == 2:  # one direction for label 1: label 0's row is its opposite, with the mirrored sigmoid
        coef, intercept = np.vstack([-coef[0], coef[0]]), np.asarray([-intercept[0], intercept[0]])
        sigmoid_a = np.asarray([sigmoid_a[-1], sigmoid_a[-1]], dtype=np.float64)
        sigmoid_b = np.asarray([-sigmoid_b[-1], sigmoid_b[-1]], dtype=np.float64)
    vocabulary = [""] * len(vectorizer.vocabulary_)
    for term, index in vectorizer.vocabulary_.items():
        vocabulary[index] = term
    return LinearModel(
        labels=tuple(order),
        vocabulary=vocabulary,
        idf=np.asarray(vectorizer.idf_, dtype=np.float64),
        coef=coef,
        intercept=intercept,
        sigmoid_a=sigmoid_a,
        sigmoid_b=sigmoid_b,
        params={"C": c, "seed": seed, "min_df": min_df, "calibration_folds": folds, "train_examples": len(texts)},
    )


def save_linear(model: LinearModel, folder: Path) -> None:
    """Write ``model`` as JSON + safetensors (``linear.json`` last: the folder is a linear model once it is there)."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "model_type": MODEL_TYPE,
        "format_version": FORMAT_VERSION,
        "id2label": {str(i): label for i, label in enumerate(model.labels)},
        "label2id": {label: i for i, label in enumerate(model.labels)},
        "features": "tfidf(mecab unidic-lite surface, nfkc lower, 1-2 grams, sublinear tf, l2)",
        "classifier": "LinearSVC one-vs-rest + sigmoid calibration (CalibratedClassifierCV, ensemble=False)",
        "num_features": len(model.vocabulary),
        "params": model.params,
    }
    (folder / VOCABULARY_FILE).write_text(json.dumps(model.vocabulary, ensure_ascii=False), encoding="utf-8")
    arrays = {
        "idf": model.idf,
        "coef": model.coef,
        "intercept": model.intercept,
        "sigmoid_a": model.sigmoid_a,
        "sigmoid_b": model.sigmoid_b,
    }
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}, folder / WEIGHTS_FILE)
    (folder / LINEAR_CONFIG).write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")


def fit_linear_model(options: TrainOptions, data: TrainingData, out_dir: Path, run_dir: Path, clock: Clock) -> Fit:
    """The linear kind's fitting step: TF-IDF + linear SVM on the train split (seeded by the run's seed), saved to
    ``out_dir``, with its test-split predictions. It keeps no run folder."""
    started = time.monotonic()
    clock.phase("train", "fitting TF-IDF + linear SVM")
    train_set = data.train_set
    texts = [article_of(a).text for a in train_set]
    labels = data.labels.labels
    seed = options.trainer.seed
    model = fit_linear(texts, [a.slug for a in train_set], labels=labels, c=options.linear.linear_c, seed=seed)
    save_linear(model, out_dir)
    clock.phase("evaluate", "evaluating on the test split")
    proba = model.predict_proba([article_of(a).text for a in data.split.test])
    predicted = [labels[i] for i in proba.argmax(axis=1)]
    return Fit(predicted, dict(model.params), seconds=time.monotonic() - started)
