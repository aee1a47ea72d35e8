"""Training data that looks alike or is too large: labels normalised (NFKC) and look-alike spellings refused,
labels files with a key twice refused, labels drawn as plain text, articles capped and files read as streams."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import tarfile
import tracemalloc
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from common.exceptions import CorpusError, DatasetError
from common.labels import LabelSet, normalise_label
from store.classifications import RECORD_BODY_MAX_CHARS
from testkit.newsroom import newsroom_rows, write_csv, write_jsonl, write_label_folders, write_parquet
from training.api import train, train_options
from training.cli import main
from training.corpus import MAX_ARTICLE_CHARS, load_corpus
from training.dataset import MAX_ROW_CHARS, load_labelled
from training.evaluation import plot_confusion
from training.examples import load_extra_examples

SPORTS = "スポーツ"
SPORTS_NFD = unicodedata.normalize("NFD", SPORTS)
SPORTS_HALF = "ｽﾎﾟｰﾂ"
MATH = "$\\nocommand$"


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return newsroom_rows(per_label=10)


def run(*args: str) -> tuple[int, list[Any]]:
    out = io.StringIO()
    code = main(list(args), stdin=io.StringIO(""), out=out)
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def snapshot(folder: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(folder)), p.stat().st_size if p.is_file() else -1) for p in folder.rglob("*"))


def relabel(rows: list[dict[str, str]], old: str, new: str, only: int | None = None) -> list[dict[str, str]]:
    """``rows`` with ``old`` spelled ``new`` (in every row, or only in the ``only``-th row, 0-based)."""
    out, seen = [], 0
    for row in rows:
        row = dict(row)
        if row["label"] == old:
            if only is None or seen == only:
                row["label"] = new
            seen += 1
        out.append(row)
    return out


def row_index(rows: list[dict[str, str]], label: str, nth: int) -> int:
    return [i for i, r in enumerate(rows) if r["label"] == label][nth]


# -- labels that look alike -----------------------------------------------------------------------------------


def test_normalise_label_folds_nfd_half_width_and_spaces() -> None:
    assert normalise_label(SPORTS_NFD) == normalise_label(SPORTS_HALF) == normalise_label(f"\u3000{SPORTS} ") == SPORTS
    assert SPORTS_NFD != SPORTS and normalise_label("ＩＴ") == "IT"


@pytest.mark.parametrize("spelling", [SPORTS_NFD, SPORTS_HALF])
def test_a_label_spelled_two_ways_is_refused_naming_both_rows(
    spelling: str, rows: list[dict[str, str]], tmp_path: Path
) -> None:
    mixed = relabel(rows, SPORTS, spelling, only=3)
    path = write_csv(tmp_path / "mixed.csv", mixed)
    with pytest.raises(DatasetError) as raised:
        load_labelled(path)
    # the header is line 1: row n (0-based) is on line n + 2
    second, first = row_index(rows, SPORTS, 3) + 2, row_index(rows, SPORTS, 0) + 2
    assert raised.value.where == f"{path}: line {second} (row {second - 1})"
    assert f"line {first} (row {first - 1})" in str(raised.value) and "NFKC" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_one_spelling_is_kept_normalised_in_every_format(rows: list[dict[str, str]], tmp_path: Path) -> None:
    half = relabel(rows, SPORTS, SPORTS_HALF)
    for path in (
        write_csv(tmp_path / "half.csv", half),
        write_jsonl(tmp_path / "half.jsonl", half),
        write_parquet(tmp_path / "half.parquet", half),
        write_label_folders(tmp_path / "nfd", relabel(rows, SPORTS, SPORTS_NFD)),  # as macOS names folders
    ):
        data = load_labelled(path)
        assert SPORTS in data.labels and SPORTS_HALF not in data.labels and SPORTS_NFD not in data.labels, path
        assert sum(a.slug == SPORTS for a in data.articles) == 10


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("dup.yaml", "政治:\n  ja: 政治\n  en: Politics\n経済:\n  en: Economy\n政治:\n  en: Government\n", 6),
        ("dup.json", '{\n  "政治": {"en": "Politics"},\n  "経済": {"en": "Economy"},\n  "政治": {"en": "Gov"}\n}\n', 4),
        ("names.yaml", "政治:\n  en: Politics\n  en: Government\n", 3),
        ("names.json", '{"政治": {"en": "Politics",\n "en": "Government"}}', 2),
        ("alike.yaml", f"{SPORTS}:\n  en: Sports\n{SPORTS_HALF}:\n  en: Sport\n", 3),
        ("alike.json", f'{{"{SPORTS}": {{"en": "Sports"}},\n"{SPORTS_NFD}": {{"en": "Sport"}}}}', 2),
    ],
)
def test_a_labels_file_with_a_key_twice_is_refused_naming_the_line(
    name: str, text: str, line: int, rows: list[dict[str, str]], tmp_path: Path
) -> None:
    data = write_csv(tmp_path / "desks.csv", rows)
    labels = tmp_path / name
    labels.write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError) as raised:
        load_labelled(data, labels_file=labels)
    assert raised.value.where == f"{labels}: line {line}", str(raised.value)
    assert "\n" not in str(raised.value)


def test_labels_file_keys_are_normalised_like_the_data(rows: list[dict[str, str]], tmp_path: Path) -> None:
    labels = tmp_path / "labels.yaml"
    labels.write_text(f"{SPORTS_HALF}:\n  en: Sports\n", encoding="utf-8")
    data = load_labelled(write_csv(tmp_path / "desks.csv", rows), labels_file=labels)
    assert data.labels.en(SPORTS) == "Sports"


def test_corrections_are_matched_on_the_normalised_label(rows: list[dict[str, str]], tmp_path: Path) -> None:
    path = tmp_path / "extra.jsonl"
    lines = [
        {"text": "日本代表が逆転勝ち。決勝戦は大いに盛り上がった。", "slug": SPORTS_NFD},
        {"text": "x" * (MAX_ARTICLE_CHARS + 1), "slug": SPORTS},  # an article over the cap
        {"text": "y" * (MAX_ROW_CHARS + 10), "slug": SPORTS},  # a line over the row bound
        {"text": "首相が会見した。国会の審議が続く。", "slug": "政治"},
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines), encoding="utf-8")
    extra = load_extra_examples(path, labels=LabelSet(("政治", SPORTS)))
    assert [a.slug for a in extra.articles] == [SPORTS, "政治"] and extra.skipped == 2


# -- labels are drawn as plain text ---------------------------------------------------------------------------


def test_math_markup_in_a_label_is_drawn_as_plain_text(tmp_path: Path) -> None:
    labels = LabelSet((MATH, "$x^{2$", "plain"))
    out = plot_confusion([[1, 0, 0], [0, 1, 0], [0, 0, 1]], tmp_path / "c.png", "t", labels)
    assert out.stat().st_size > 1000


def test_a_math_markup_label_trains_and_plots(rows: list[dict[str, str]], tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "math.jsonl", relabel(rows, "政治", MATH))
    outcome = train(
        train_options(data=str(path), model_type="linear", model_dir=tmp_path / "models", cache_dir=tmp_path / "c")
    )
    assert outcome.promoted and MATH in outcome.labels and outcome.confusion_png.stat().st_size > 1000


# -- size: one article capped, files read as streams ----------------------------------------------------------


def test_the_cap_is_of_the_order_of_the_stored_record() -> None:
    # an exported correction (a record's body, cut at RECORD_BODY_MAX_CHARS, and its title) always fits
    assert RECORD_BODY_MAX_CHARS + 200 <= MAX_ARTICLE_CHARS <= 10 * RECORD_BODY_MAX_CHARS
    assert MAX_ROW_CHARS <= 4 * MAX_ARTICLE_CHARS


def over_cap(rows: list[dict[str, str]], at: int, chars: int) -> list[dict[str, str]]:
    rows = [dict(r) for r in rows]
    rows[at]["text"] = "あ" * chars
    return rows


@pytest.mark.parametrize("chars", [MAX_ARTICLE_CHARS + 1, MAX_ROW_CHARS + 1])
def test_an_over_cap_article_is_refused_naming_the_file_and_row(
    chars: int, rows: list[dict[str, str]], tmp_path: Path
) -> None:
    big = over_cap(rows, 5, chars)
    # the article just over the cap, and a row over what the reader holds (refused unread)
    expected = {
        write_csv(tmp_path / "big.csv", big): "line 7 (row 6)",
        write_jsonl(tmp_path / "big.jsonl", big): "line 6",
        write_parquet(tmp_path / "big.parquet", big): "row 6",
    }
    for path, where in expected.items():
        with pytest.raises(DatasetError) as raised:
            load_labelled(path)
        assert raised.value.where == f"{path}: {where}", str(raised.value)
        assert f"{MAX_ARTICLE_CHARS:,}" in str(raised.value) and "\n" not in str(raised.value)
    folder = write_label_folders(tmp_path / "folder", big)
    with pytest.raises(DatasetError, match=f"at most {MAX_ARTICLE_CHARS:,}"):
        load_labelled(folder)


def test_an_over_cap_livedoor_article_file_is_refused_unread(tmp_path: Path) -> None:
    article = tmp_path / "text" / "sports-watch" / "sports-watch-1.txt"
    article.parent.mkdir(parents=True)
    article.write_text("http://news.livedoor.com/1\n2012-01-01\nタイトル\n" + "あ" * MAX_ROW_CHARS, encoding="utf-8")
    with pytest.raises(CorpusError, match=rf"{re.escape(str(article))}: [0-9,]+ bytes, more than an article may have"):
        load_corpus(tmp_path)
    archive = tmp_path / "ldcc.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "text", arcname="text")
    with pytest.raises(CorpusError, match=r"text/sports-watch/sports-watch-1\.txt: [0-9,]+ bytes"):
        load_corpus(archive)


def test_a_character_cut_off_at_the_end_is_still_named(rows: list[dict[str, str]], tmp_path: Path) -> None:
    path = write_csv(tmp_path / "cut.csv", rows)
    path.write_bytes(path.read_bytes().rstrip(b"\r\n") + "あ".encode()[:2])
    with pytest.raises(DatasetError) as raised:
        load_labelled(path)
    assert raised.value.where == f"{path}: line {len(rows) + 1}" and "not readable as utf-8" in str(raised.value)


def test_a_quoted_csv_cell_over_many_lines_is_counted_whole(rows: list[dict[str, str]], tmp_path: Path) -> None:
    lines = "\n".join(["あ" * 1000] * (MAX_ROW_CHARS // 1000 + 5))  # each line short, the cell too long
    path = write_csv(tmp_path / "lines.csv", [*rows[:3], {**rows[3], "text": lines}, *rows[4:]])
    with pytest.raises(DatasetError) as raised:
        load_labelled(path)
    assert raised.value.where == f"{path}: line 5 (row 4)" and f"{MAX_ROW_CHARS:,}" in str(raised.value)


# A 64 MB cell: the old reader held the file's bytes, its decoded text and the csv copy of the cell at once (over
# 190 MB under tracemalloc). The streaming reader holds one line of at most MAX_ROW_CHARS characters (400 KB of
# bytes, and its text), plus the 40 accepted rows (about 40 KB): well under 2 MB measured. 16 MB leaves eight
# times that for interpreter noise (pyarrow, csv, json buffers) and is still a quarter of the cell, so the test
# cannot pass by chance on a reader that holds the cell.
BIG_CELL_BYTES = 64 << 20
PEAK_BOUND = 16 << 20


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_peak_memory_stays_small_on_a_huge_cell(suffix: str, rows: list[dict[str, str]], tmp_path: Path) -> None:
    path = tmp_path / f"huge{suffix}"
    good = rows[:20]
    with path.open("w", encoding="utf-8", newline="") as out:
        if suffix == ".csv":
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["label", "title", "text"])
            writer.writerows([r["label"], r["title"], r["text"]] for r in good)
            out.write(f"{SPORTS},big,")
            for _ in range(BIG_CELL_BYTES >> 20):
                out.write("a" * (1 << 20))
        else:
            out.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in good)
            out.write(f'{{"label": "{SPORTS}", "text": "')
            for _ in range(BIG_CELL_BYTES >> 20):
                out.write("a" * (1 << 20))
            out.write('"}')
        out.write("\n")
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError) as raised:
            load_labelled(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BOUND, f"peak {peak / 2**20:.1f} MB"
    assert raised.value.where == (f"{path}: line 22 (row 21)" if suffix == ".csv" else f"{path}: line 21")


# -- a refused training leaves the registry as it was ---------------------------------------------------------


@pytest.fixture(scope="module")
def registry_root(rows: list[dict[str, str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("registry")
    code, lines = run(
        *("train", "--data", str(write_csv(root / "desks.csv", rows)), "--model-type", "linear"),
        *("--model-dir", str(root / "models"), "--cache-dir", str(root / "cache")),
    )
    assert code == 0 and lines[-1]["promoted"]
    return root / "models"


@pytest.mark.parametrize("bad", ["two spellings", "labels key twice", "over-cap cell"])
def test_a_refused_training_leaves_the_registry_as_it_was(
    bad: str,
    rows: list[dict[str, str]],
    registry_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    models = tmp_path / "models"
    shutil.copytree(registry_root, models)
    before = snapshot(models)
    extra: list[str] = []
    if bad == "two spellings":  # ten articles under each spelling: enough for two labels, were they two
        more = relabel(newsroom_rows(per_label=10, seed=1), SPORTS, SPORTS_HALF)
        data = write_csv(tmp_path / "bad.csv", [*rows, *more])
    elif bad == "labels key twice":
        data = write_csv(tmp_path / "good.csv", rows)
        labels = tmp_path / "labels.yaml"
        labels.write_text(f"{SPORTS}:\n  en: Sports\n{SPORTS}:\n  en: Sport\n", encoding="utf-8")
        extra = ["--labels", str(labels)]
    else:
        data = write_csv(tmp_path / "bad.csv", over_cap(rows, 5, MAX_ARTICLE_CHARS + 1))
    code, lines = run("train", "--data", str(data), "--model-type", "linear", "--model-dir", str(models), *extra)
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 1 and lines == [] and len(errors) == 1
    assert snapshot(models) == before
