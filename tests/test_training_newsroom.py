"""A newsroom's own categories: four desks (政治, 経済, スポーツ, テック) trained from CSV, JSON Lines, Parquet and a
folder per label through the CLI; bad data refused before training, naming the file and row, with the registry
untouched; display names in the version folder; the promotion guard across label sets."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from common.articles import Article
from common.exceptions import DatasetError, InvalidModelError, LabelSetError
from common.labels import CATEGORIES, LIVEDOOR, SLUGS, LabelSet
from newsmodel import registry
from newsmodel.loading import load_classifier
from testkit.fake_corpus import build_archive
from testkit.newsroom import (
    LABEL_NAMES,
    LABELS,
    all_newsroom_texts,
    newsroom_rows,
    write_csv,
    write_jsonl,
    write_label_folders,
    write_parquet,
)
from testkit.tiny_bert import build_tiny_bert
from training.api import train, train_options
from training.cli import main
from training.dataset import load_labelled, text_id

SORTED = sorted(LABELS)  # the label set of the data: its labels, sorted
# One unseen article per desk, in the words of that desk.
UNSEEN = {
    "政治": "野党は内閣改造を巡って記者会見を開き、国会での審議を求めた。",
    "経済": "日銀は金利の見通しを発表し、日経平均株価は続伸した。",
    "スポーツ": "日本代表は決勝戦で逆転勝利を収め、ファンから大きな声援が送られた。",
    "テック": "半導体メーカーは生成AIの性能を大幅に高めたと発表した。",
}


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return newsroom_rows(per_label=20)


@pytest.fixture(scope="module")
def newsroom(rows: list[dict[str, str]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same 80 articles as CSV, JSON Lines, Parquet and a folder per label, and a YAML labels file."""
    root = tmp_path_factory.mktemp("newsroom")
    labels_file = root / "labels.yaml"
    labels_file.write_text(
        "".join(f"{label}:\n  ja: {names['ja']}\n  en: {names['en']}\n" for label, names in LABEL_NAMES.items()),
        encoding="utf-8",
    )
    return {
        "csv": write_csv(root / "desks.csv", rows),
        "jsonl": write_jsonl(root / "desks.jsonl", rows),
        "parquet": write_parquet(root / "desks.parquet", rows),
        "folder": write_label_folders(root / "desks", rows),
        "labels": labels_file,
    }


def run(*args: str, stdin: str = "") -> tuple[int, list[Any]]:
    out = io.StringIO()
    code = main(list(args), stdin=io.StringIO(stdin), out=out)
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def train_linear(data: Path, root: Path, *extra: str) -> dict[str, Any]:
    code, lines = run(
        *("train", "--data", str(data), "--model-type", "linear"),
        *("--model-dir", str(root / "models"), "--cache-dir", str(root / "cache")),
        *extra,
    )
    assert code == 0
    return dict(lines[-1])


def predict(model_dir: Path, texts: list[str]) -> list[dict[str, Any]]:
    code, results = run("predict", "--model-dir", str(model_dir), stdin="\n".join(texts) + "\n")
    assert code == 0
    return results


def snapshot(folder: Path) -> list[tuple[str, int]]:
    """Every path below ``folder`` with its size: a registry that is exactly as it was."""
    if not folder.exists():
        return []
    return sorted((str(p.relative_to(folder)), p.stat().st_size if p.is_file() else -1) for p in folder.rglob("*"))


# -- the label set type ---------------------------------------------------------------------------------------


def test_label_sets_display_round_trip_and_the_livedoor_default() -> None:
    assert LIVEDOOR.labels == SLUGS and len(LIVEDOOR) == 9 and list(LIVEDOOR) == list(SLUGS)
    assert all(LIVEDOOR.display(c.slug) == c.display for c in CATEGORIES)
    assert LIVEDOOR.index("sports-watch") == 1 and LIVEDOOR.id2label()[0] == "topic-news"

    desks = LabelSet(tuple(SORTED), {"政治": {"ja": "政治", "en": "Politics"}, "テック": {"en": "Tech"}})
    assert desks.display("政治") == "政治 / Politics"
    assert desks.display("テック") == "テック / Tech" and desks.ja("テック") == "テック"
    assert desks.display("経済") == "経済"  # no display name: the label itself
    plain = desks.to_dict()
    assert plain == json.loads(json.dumps(plain)) and isinstance(plain["labels"], list)
    assert LabelSet.from_dict(plain) == desks and LabelSet.from_json(desks.to_json()) == desks
    assert LabelSet.from_json(LIVEDOOR.to_json()) == LIVEDOOR
    assert desks.same_labels(reversed(SORTED)) and not desks.same_labels(SLUGS)

    for bad in [("政治",), ("政治", "政治"), ("政治", ""), ("政治", "a\nb")]:
        with pytest.raises(LabelSetError):
            LabelSet(bad)
    with pytest.raises(LabelSetError, match="not one of the labels"):
        LabelSet(("a", "b"), {"c": {"en": "C"}})
    with pytest.raises(LabelSetError, match="unknown language"):
        LabelSet(("a", "b"), {"a": {"fr": "A"}})


def test_a_two_label_linear_model_serves_scikit_learns_probabilities(
    rows: list[dict[str, str]], tmp_path: Path
) -> None:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    from newsmodel.linear import features
    from training.linear import fit_linear, save_linear

    pair = [r for r in rows if r["label"] in ("政治", "経済")]
    texts, labels = [r["text"] for r in pair], [r["label"] for r in pair]
    save_linear(fit_linear(texts, labels, labels=("政治", "経済")), tmp_path / "two")
    served = load_classifier(tmp_path / "two").predict([Article("", UNSEEN["政治"]), Article("", UNSEEN["経済"])])
    assert [p.label for p in served] == ["政治", "経済"]
    vectorizer = TfidfVectorizer(analyzer=features, sublinear_tf=True, min_df=1, dtype=np.float64)
    ids = [("政治", "経済").index(label) for label in labels]
    model = CalibratedClassifierCV(LinearSVC(C=1.0, random_state=42), method="sigmoid", cv=5, ensemble=False)
    model.fit(vectorizer.fit_transform(texts), ids)
    expected = model.predict_proba(vectorizer.transform([UNSEEN["政治"], UNSEEN["経済"]]))
    got = np.array([[p.scores["政治"], p.scores["経済"]] for p in served])
    np.testing.assert_allclose(got, expected, atol=1e-5)


# -- training from each format ------------------------------------------------------------------------------


def test_linear_from_csv_through_the_cli_with_display_names(newsroom: dict[str, Path], tmp_path: Path) -> None:
    extra = tmp_path / "corrections.jsonl"
    extra.write_text(
        json.dumps({"text": "財務省は税収の見通しを発表した。", "label": "経済"}, ensure_ascii=False)
        + "\n"
        + json.dumps({"text": "日本代表が勝った。", "slug": "sports-watch"})  # not one of this data's labels
        + "\n",
        encoding="utf-8",
    )
    summary = train_linear(
        newsroom["csv"], tmp_path, "--labels", str(newsroom["labels"]), "--extra-examples", str(extra)
    )
    assert summary["promoted"] and summary["labels"] == SORTED
    folder = Path(summary["path"])
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["labels"] == SORTED and set(metrics["per_class"]) == set(LABELS)
    assert metrics["examples"] == 8 and len(metrics["confusion_matrix"]) == 4
    assert metrics["accuracy"] >= 0.75, metrics
    config = json.loads((folder / "linear.json").read_text(encoding="utf-8"))
    assert [config["id2label"][str(i)] for i in range(4)] == SORTED
    stored = LabelSet.from_json((folder / "labels.json").read_text(encoding="utf-8"))
    assert stored.labels == tuple(SORTED) and stored.display("テック") == "テクノロジー / Tech"
    classifier = load_classifier(folder)
    assert classifier.labels == stored
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "into 4 categories" in card and "テクノロジー / Tech" in card and "livedoor" not in card
    assert (folder / "confusion_matrix.png").read_bytes().startswith(b"\x89PNG")
    info = json.loads((folder / "training.json").read_text(encoding="utf-8"))
    assert info["dataset"]["kind"] == "csv" and info["dataset"]["per_label"] == dict.fromkeys(SORTED, 20)
    assert info["labels"] == stored.to_dict()
    assert info["split"]["extra_examples"] == 1 and info["split"]["extra_examples_skipped"] == 1

    results = predict(tmp_path / "models", list(UNSEEN.values()))
    assert [r["label"] for r in results] == list(UNSEEN)
    assert all(set(r["scores"]) == set(LABELS) for r in results)
    code, listed = run("models", "--model-dir", str(tmp_path / "models"), "list", "--json")
    assert code == 0 and listed[0]["label_count"] == 4 and listed[0]["labels"] == SORTED


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "folder"])
def test_linear_from_json_lines_parquet_and_a_folder_per_label(
    kind: str, newsroom: dict[str, Path], tmp_path: Path
) -> None:
    summary = train_linear(newsroom[kind], tmp_path)
    folder = Path(summary["path"])
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["labels"] == SORTED and metrics["examples"] == 8
    assert json.loads((folder / "training.json").read_text(encoding="utf-8"))["dataset"]["kind"] == kind
    # Without a labels file, the labels are shown as they are.
    assert load_classifier(folder).labels == LabelSet(tuple(SORTED))
    results = predict(tmp_path / "models", list(UNSEEN.values()))
    assert [r["label"] for r in results] == list(UNSEEN)


def test_the_same_articles_get_the_same_ids_and_split_in_every_format(
    newsroom: dict[str, Path], tmp_path: Path
) -> None:
    fingerprints = set()
    for kind in ("csv", "jsonl", "parquet", "folder"):
        data = load_labelled(newsroom[kind])
        assert data.labels.labels == tuple(SORTED) and len(data.articles) == 80
        code, [prepared] = run("prepare", "--data", str(newsroom[kind]), "--cache-dir", str(tmp_path / kind))
        assert code == 0 and prepared["split"] == {"train": 64, "validation": 8, "test": 8}
        assert prepared["per_class"] == dict.fromkeys(SORTED, 20)
        fingerprints.add(prepared["test_fingerprint"])
    assert len(fingerprints) == 1  # ids are digests of the text: the same split whatever the format
    again = run("prepare", "--data", str(newsroom["csv"]), "--cache-dir", str(tmp_path / "again"))[1][0]
    assert again["test_fingerprint"] in fingerprints
    first = load_labelled(newsroom["csv"]).articles[0]
    assert first.id == text_id(first.title, first.body) and first.id.startswith("text-")


def test_tiny_bert_from_csv_through_the_cli(
    rows: list[dict[str, str]], newsroom: dict[str, Path], tmp_path: Path
) -> None:
    # A base model with livedoor's nine labels: training gives it a new head for the four desks.
    base = build_tiny_bert(tmp_path / "tiny", all_newsroom_texts(rows) + list(UNSEEN.values()))
    code, lines = run(
        *("train", "--data", str(newsroom["csv"]), "--base-model", str(base), "--labels", str(newsroom["labels"])),
        *("--epochs", "4", "--batch-size", "8", "--max-length", "64", "--learning-rate", "5e-3", "--warmup", "0"),
        *("--model-dir", str(tmp_path / "models"), "--cache-dir", str(tmp_path / "cache")),
        *("--run-dir", str(tmp_path / "runs"), "--device", "cpu", "--no-baseline"),
    )
    assert code == 0
    folder = Path(lines[-1]["path"])
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert [config["id2label"][str(i)] for i in range(4)] == SORTED and config["label2id"]["政治"] == SORTED.index(
        "政治"
    )
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["labels"] == SORTED and set(metrics["per_class"]) == set(LABELS)
    assert (folder / "labels.json").is_file()
    classifier = load_classifier(folder, device="cpu")
    assert classifier.labels.display("経済") == "経済 / Economy"
    results = predict(tmp_path / "models", list(UNSEEN.values()))
    assert all(set(r["scores"]) == set(LABELS) and r["label"] in LABELS for r in results)


# -- bad data: refused before training, naming the file and row; the registry untouched ----------------------


@pytest.fixture(scope="module")
def livedoor_registry(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A registry whose current version is a livedoor (nine labels) linear model."""
    root = tmp_path_factory.mktemp("livedoor")
    archive = build_archive(root / "ldcc-20140209.tar.gz", per_class=12)
    outcome = train(
        train_options(data=str(archive), model_type="linear", model_dir=root / "models", cache_dir=root / "cache")
    )
    assert outcome.promoted and outcome.labels == LIVEDOOR
    return {"models": root / "models", "archive": archive}


def _bad_csv(path: Path, rows: list[dict[str, str]], change: str) -> tuple[Path, list[str]]:
    """A broken copy of the CSV and what the error must name."""
    rows = [dict(r) for r in rows]
    if change == "missing column":
        rows = [{"title": r["title"], "text": r["text"]} for r in rows]
        return write_csv(path, rows), [f"{path}: line 1", "'label'"]
    if change == "empty text":
        rows[6]["text"] = "  "
        return write_csv(path, rows), [f"{path}: line 8 (row 7)", "empty"]
    if change == "too few":
        rows = [r for r in rows if r["label"] != "テック"] + [r for r in rows if r["label"] == "テック"][:9]
        return write_csv(path, rows), [str(path), "'テック'", "only 9", "at least 10", "line 62 (row 61)"]
    if change == "one label":
        return write_csv(path, [r for r in rows if r["label"] == "政治"]), [str(path), "only one label"]
    assert change == "shift_jis"
    return write_csv(path, rows, encoding="cp932"), [f"{path}: line 2", "utf-8 is expected", "Shift_JIS", "cp932"]


@pytest.mark.parametrize("change", ["missing column", "empty text", "too few", "one label", "shift_jis"])
def test_bad_data_is_refused_before_training_and_the_registry_is_unchanged(
    change: str,
    rows: list[dict[str, str]],
    livedoor_registry: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    models = tmp_path / "models"
    shutil.copytree(livedoor_registry["models"], models)
    before = snapshot(models)
    path, named = _bad_csv(tmp_path / "bad.csv", rows, change)
    code, lines = run("train", "--data", str(path), "--model-type", "linear", "--model-dir", str(models))
    error = capsys.readouterr().err
    assert code == 1 and lines == []
    for part in named:
        assert part in error, (part, error)
    assert snapshot(models) == before
    with pytest.raises(DatasetError) as raised:
        load_labelled(path)
    assert raised.value.where in error and "学習データを使えません" in raised.value.user_message


def test_a_shift_jis_csv_is_read_when_its_encoding_is_named(rows: list[dict[str, str]], tmp_path: Path) -> None:
    path = write_csv(tmp_path / "sjis.csv", rows, encoding="cp932")
    summary = train_linear(path, tmp_path, "--data-encoding", "cp932")
    assert summary["labels"] == SORTED


def test_bad_json_lines_and_labels_files_name_the_line(rows: list[dict[str, str]], tmp_path: Path) -> None:
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    lines[4] = "{not json"
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=rf"{path}: line 5"):
        load_labelled(path)
    lines[4] = json.dumps({"text": "本文", "category": "政治"}, ensure_ascii=False)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=rf"{path}: line 5: missing column\(s\) 'label'"):
        load_labelled(path)
    good = write_jsonl(tmp_path / "good.jsonl", rows)
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"天気": {"ja": "天気", "en": "Weather"}}, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(DatasetError, match="天気"):
        load_labelled(good, labels_file=names)


def test_duplicates_are_skipped_counted_and_do_not_stop_training(rows: list[dict[str, str]], tmp_path: Path) -> None:
    copies = [dict(rows[0]), {**rows[1], "label": "スポーツ"}]  # the same article again; one under another desk
    path = write_csv(tmp_path / "dups.csv", [*rows, *copies])
    data = load_labelled(path)
    assert (len(data.articles), data.duplicates, data.conflicting) == (80, 2, 1)
    summary = train_linear(path, tmp_path)
    info = json.loads((Path(summary["path"]) / "training.json").read_text(encoding="utf-8"))
    assert info["dataset"]["duplicates_skipped"] == 2 and info["dataset"]["conflicting_duplicates"] == 1


def test_csv_with_ids_uses_them(rows: list[dict[str, str]], tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["id", "label", "text"])
        writer.writeheader()
        writer.writerows({"id": f"a{n}", "label": r["label"], "text": r["text"]} for n, r in enumerate(rows))
    data = load_labelled(path)
    assert [a.id for a in data.articles[:2]] == ["a0", "a1"] and data.articles[0].title == ""


# -- the promotion guard across label sets --------------------------------------------------------------------


def test_a_model_of_other_labels_is_not_compared_and_promoted_only_with_force(
    newsroom: dict[str, Path], livedoor_registry: dict[str, Path], tmp_path: Path
) -> None:
    models = tmp_path / "models"
    shutil.copytree(livedoor_registry["models"], models)
    livedoor = registry.current_version(models)
    options = dict(data=str(newsroom["csv"]), model_type="linear", model_dir=models, cache_dir=tmp_path / "c")
    refused = train(train_options(**options))
    assert not refused.promoted and registry.current_version(models) == livedoor
    assert refused.reason.startswith("not promoted") and "other categories" in refused.reason
    assert "9: topic-news" in refused.reason and "4: " in refused.reason and "--force" in refused.reason
    assert "カテゴリ" in refused.reason and "比べられません" in refused.reason
    assert refused.previous_version == livedoor
    versions = {v.version: v for v in registry.list_versions(models)}
    assert versions[refused.version].labels == LabelSet(tuple(SORTED))
    assert versions[livedoor].labels == LIVEDOOR

    forced = train(train_options(**options, force=True))
    assert forced.promoted and forced.reason.startswith("forced") and registry.current_version(models) == forced.version
    assert load_classifier(models / forced.version).labels.same_labels(LABELS)


def test_a_model_tested_on_other_test_articles_is_not_compared(
    livedoor_registry: dict[str, Path], tmp_path: Path
) -> None:
    models = tmp_path / "models"
    shutil.copytree(livedoor_registry["models"], models)
    current = registry.current_version(models)
    assert current is not None
    metrics = json.loads((models / current / "metrics.json").read_text(encoding="utf-8"))
    metrics.update({"test_fingerprint": "another-split", "macro_f1": 0.0})
    (models / current / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    outcome = train(
        train_options(
            data=str(livedoor_registry["archive"]), model_type="linear", model_dir=models, cache_dir=tmp_path / "c"
        )
    )
    assert not outcome.promoted and "other test articles" in outcome.reason and "別のテスト記事" in outcome.reason
    # With no stored metrics the current model is measured on this test split, as before.
    (models / current / "metrics.json").unlink()
    again = train(
        train_options(
            data=str(livedoor_registry["archive"]), model_type="linear", model_dir=models, cache_dir=tmp_path / "c"
        )
    )
    assert again.promoted and again.reason.startswith("test macro-F1")
    assert again.previous_metrics is not None and again.previous_metrics["examples"] == 9


def test_a_labels_json_that_contradicts_the_model_is_refused(
    livedoor_registry: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    current = registry.current_version(livedoor_registry["models"])
    assert current is not None
    shutil.copytree(livedoor_registry["models"] / current, folder)
    assert load_classifier(folder).labels == LIVEDOOR
    (folder / "labels.json").write_text(LabelSet(("a", "b")).to_json(), encoding="utf-8")
    with pytest.raises(InvalidModelError, match=r"labels\.json"):
        load_classifier(folder)
