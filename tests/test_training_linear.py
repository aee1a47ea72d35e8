"""The linear model: scikit-learn's arithmetic reproduced from JSON + safetensors, served through load_classifier."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from common.articles import Article
from common.exceptions import InvalidModelError
from common.labels import SLUGS
from newsmodel.linear import LinearClassifier, features, is_linear_folder
from newsmodel.loading import load_classifier
from testkit.samples import SAMPLES
from training.linear import fit_linear, save_linear

FILLER = ["今後の動向に注目が集まっている。", "関係者は次のように話した。", "詳しくは公式サイトで確認してほしい。"]


def training_texts() -> tuple[list[str], list[str]]:
    texts, slugs = [], []
    for slug, samples in SAMPLES.items():
        for i, sample in enumerate(samples):
            for filler in FILLER:
                texts.append(f"{sample}\n{filler}{samples[(i + 1) % len(samples)]}")
                slugs.append(slug)
    return texts, slugs


def test_bigram_features() -> None:
    assert features("日本代表が勝利") == ["日本", "代表", "が", "勝利", "日本 代表", "代表 が", "が 勝利"]
    assert features("ＡＢＣ") == features("abc")  # NFKC + lower case


def test_saved_model_reproduces_sklearn_probabilities(tmp_path: Path) -> None:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    texts, slugs = training_texts()
    model = fit_linear(texts, slugs, c=1.0, seed=0)
    save_linear(model, tmp_path / "linear")
    assert sorted(p.name for p in (tmp_path / "linear").iterdir()) == [
        "linear.json",
        "vocabulary.json",
        "weights.safetensors",
    ]
    # The reference: the same pipeline in scikit-learn, kept in memory.
    vectorizer = TfidfVectorizer(analyzer=features, sublinear_tf=True, min_df=1)
    labels = [SLUGS.index(s) for s in slugs]
    reference = CalibratedClassifierCV(LinearSVC(C=1.0, random_state=0), method="sigmoid", cv=5, ensemble=False)
    reference.fit(vectorizer.fit_transform(texts), labels)
    new = ["新型スマートフォンの料金プランが発表された。", "横綱が優勝を決めた。", "映画の舞台あいさつ"]
    expected = reference.predict_proba(vectorizer.transform(new))

    classifier = load_classifier(tmp_path / "linear", "v1")
    assert isinstance(classifier, LinearClassifier)
    predictions = classifier.predict([Article(title="", body=text) for text in new])
    got = np.array([[p.scores[slug] for slug in SLUGS] for p in predictions])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert [p.slug for p in predictions] == ["smax", "sports-watch", "movie-enter"]
    assert all(abs(sum(p.scores.values()) - 1) < 1e-6 for p in predictions)


def test_a_broken_linear_folder_is_refused(tmp_path: Path) -> None:
    texts, slugs = training_texts()
    folder = tmp_path / "linear"
    save_linear(fit_linear(texts, slugs), folder)
    assert is_linear_folder(folder)
    config = json.loads((folder / "linear.json").read_text(encoding="utf-8"))
    config["id2label"]["0"] = SLUGS[1]  # the same label twice: any labels will do, but each once
    (folder / "linear.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(InvalidModelError, match="repeated"):
        load_classifier(folder)
    config["id2label"]["0"] = "not-a-slug"  # another label is fine, but not when labels.json disagrees
    (folder / "linear.json").write_text(json.dumps(config), encoding="utf-8")
    assert list(load_classifier(folder).labels)[:2] == ["not-a-slug", SLUGS[1]]
    (folder / "labels.json").write_text(json.dumps({"labels": list(SLUGS)}), encoding="utf-8")
    with pytest.raises(InvalidModelError, match=r"labels\.json"):
        load_classifier(folder)
    (folder / "labels.json").unlink()
    (folder / "vocabulary.json").write_text(json.dumps(["only", "two"]), encoding="utf-8")
    config["id2label"]["0"] = SLUGS[0]
    (folder / "linear.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(InvalidModelError, match="shape"):
        load_classifier(folder)


def test_every_category_needs_examples() -> None:
    with pytest.raises(ValueError, match="topic-news"):
        fit_linear(["記事"] * 8, [s for s in SLUGS if s != "topic-news"])
