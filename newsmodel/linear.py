"""The linear model's serving side: TF-IDF over MeCab words and a calibrated linear SVM, read without pickle.

A linear version folder holds ``linear.json`` (what it is), ``vocabulary.json`` and ``weights.safetensors``
(idf, SVM weights, per-class sigmoid calibration). :func:`read_linear` rebuilds scikit-learn's exact scoring
arithmetic with numpy/scipy, so nothing from the folder is ever unpickled or executed. Fitting and saving are
training's (:mod:`training.linear`).
"""

from __future__ import annotations

import itertools
import json
import math
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from common.articles import Article
from common.exceptions import InvalidModelError
from common.kinds import ModelKind
from common.labels import LabelSet
from newsmodel.prediction import Prediction, label_set_of

LINEAR_CONFIG = "linear.json"
VOCABULARY_FILE = "vocabulary.json"
WEIGHTS_FILE = "weights.safetensors"
FORMAT_VERSION = 1
MODEL_TYPE: ModelKind = "linear"  # linear.json's "model_type": what the file holds

FloatArray = npt.NDArray[np.float64]


@cache
def _tagger() -> Any:
    import fugashi
    import unidic_lite

    # Surface forms only ("wakati"), parsed in C: the same words as fugashi.Tagger's nodes, without the objects.
    return fugashi.GenericTagger(f"-d {unidic_lite.DICDIR} -r /dev/null -Owakati")


def words(text: str) -> list[str]:
    """MeCab (unidic-lite) surface forms of the NFKC-normalised, lower-cased text."""
    normalised = unicodedata.normalize("NFKC", text).lower()
    parsed: str = _tagger().parse(normalised)
    return parsed.split()


def features(text: str) -> list[str]:
    """Word unigrams and bigrams (a bigram is the two words joined by a space)."""
    tokens = words(text)
    return tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]


@dataclass
class LinearModel:
    """The fitted arrays: ``coef`` is (classes, features), the classes in ``labels`` order."""

    labels: tuple[str, ...]
    vocabulary: list[str]
    idf: FloatArray
    coef: FloatArray
    intercept: FloatArray
    sigmoid_a: FloatArray
    sigmoid_b: FloatArray
    params: dict[str, Any]

    def __post_init__(self) -> None:
        self._index = {term: i for i, term in enumerate(self.vocabulary)}

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """TF-IDF rows exactly as scikit-learn's TfidfVectorizer (sublinear tf, idf, l2 norm) computes them."""
        indptr: list[int] = [0]
        indices: list[int] = []
        values: list[float] = []
        for text in texts:
            counts = Counter(i for i in (self._index.get(f) for f in features(text)) if i is not None)
            row = sorted(counts.items())
            weights = [(1.0 + math.log(n)) * float(self.idf[i]) for i, n in row]
            norm = math.sqrt(sum(w * w for w in weights)) or 1.0
            indices.extend(i for i, _ in row)
            values.extend(w / norm for w in weights)
            indptr.append(len(indices))
        shape = (len(texts), len(self.vocabulary))
        return sp.csr_matrix((np.asarray(values, dtype=np.float64), indices, indptr), shape=shape)

    def decision(self, texts: Sequence[str]) -> FloatArray:
        scores: FloatArray = np.asarray(self.transform(texts) @ self.coef.T) + self.intercept
        return scores

    def predict_proba(self, texts: Sequence[str]) -> FloatArray:
        """One-vs-rest sigmoid-calibrated SVM scores, normalised to sum to 1 (scikit-learn's arithmetic)."""
        return self.scores(texts)[0]

    def scores(self, texts: Sequence[str]) -> tuple[FloatArray, FloatArray]:
        """The normalised probabilities (:meth:`predict_proba`) and each text's *support*: the top one-vs-rest
        sigmoid probability before normalising, i.e. how strongly any one label claims the text. Normalising hides
        an article no label claims (all low, one a little less low, sums to 1); the support keeps it low, which is
        what tells a story from an unknown desk (docs/training.md, Open set)."""
        if not texts:
            return np.zeros((0, len(self.labels))), np.zeros(0)
        raw = 1.0 / (1.0 + np.exp(self.sigmoid_a * self.decision(texts) + self.sigmoid_b))
        total = raw.sum(axis=1, keepdims=True)
        uniform = np.full_like(raw, 1.0 / raw.shape[1])
        proba: FloatArray = np.divide(raw, total, out=uniform, where=total != 0)
        support: FloatArray = raw.max(axis=1)
        return proba, support


def is_linear_folder(path: Path) -> bool:
    return (path / LINEAR_CONFIG).is_file() and (path / WEIGHTS_FILE).is_file()


def read_linear(path: Path) -> LinearModel:
    """Read a saved linear model (JSON + safetensors only; nothing is unpickled)."""
    from safetensors.numpy import load_file

    try:
        config = json.loads((path / LINEAR_CONFIG).read_text(encoding="utf-8"))
        vocabulary = json.loads((path / VOCABULARY_FILE).read_text(encoding="utf-8"))
        arrays = load_file(path / WEIGHTS_FILE)
    except (OSError, ValueError) as exc:
        raise InvalidModelError(f"{path}: cannot read the linear model: {exc}") from exc
    if config.get("model_type") != MODEL_TYPE or config.get("format_version") != FORMAT_VERSION:
        raise InvalidModelError(f"{path}: {LINEAR_CONFIG} is not a linear model of format {FORMAT_VERSION}")
    try:
        id2label = {int(k): str(v) for k, v in dict(config["id2label"]).items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidModelError(f"{path}: {LINEAR_CONFIG} has no readable id2label: {exc}") from None
    labels = label_set_of(id2label, path).labels
    n, k = len(vocabulary), len(labels)
    expected = {"idf": (n,), "coef": (k, n), "intercept": (k,), "sigmoid_a": (k,), "sigmoid_b": (k,)}
    for name, shape in expected.items():
        if name not in arrays or tuple(arrays[name].shape) != shape:
            raise InvalidModelError(f"{path}: {WEIGHTS_FILE} lacks {name} of shape {shape}")
    return LinearModel(
        labels=labels,
        vocabulary=[str(term) for term in vocabulary],
        idf=arrays["idf"].astype(np.float64),
        coef=arrays["coef"].astype(np.float64),
        intercept=arrays["intercept"].astype(np.float64),
        sigmoid_a=arrays["sigmoid_a"].astype(np.float64),
        sigmoid_b=arrays["sigmoid_b"].astype(np.float64),
        params=dict(config.get("params") or {}),
    )


class LinearClassifier:
    """A saved linear model behind the :class:`newsmodel.prediction.Classifier` interface."""

    def __init__(self, path: Path, version: str | None = None) -> None:
        self.path = path
        self.version = version or path.resolve().name
        self.model = read_linear(path)
        self.labels: LabelSet = label_set_of(dict(enumerate(self.model.labels)), path)

    def predict(self, articles: Sequence[Article]) -> list[Prediction]:
        proba, support = self.model.scores([a.text for a in articles])
        return [
            Prediction(dict(zip(self.labels, map(float, row), strict=True)), support=float(top))
            for row, top in zip(proba, support, strict=True)
        ]
