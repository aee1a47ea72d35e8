"""Labelled training data in common formats, checked before any training starts; livedoor is the default.

``--data`` (``TRAIN_DATA``) may be

- the livedoor corpus: its archive (path or URL) or its extracted ``text/`` folder (:mod:`training.corpus`);
- a CSV, JSON Lines (``.jsonl``, ``.ndjson``, ``.json``) or Parquet file with the columns ``text`` (required),
  ``label`` (required), ``title`` and ``id`` (optional);
- a folder with one sub-folder per label holding ``.txt`` files (the sub-folder's name is the label; a file is
  read like a message pasted in Slack: a short first line followed by more text is the title).

The label set is livedoor's nine in their fixed order for the corpus, else the sorted labels found, with the
display names of an optional labels file (``--labels``, ``LABELS_FILE``: YAML or JSON ``{label: {ja, en}}``).
An article without an ``id`` gets the digest of its whitespace-free title and text, so the same file always
gives the same split. Bad data is refused with a :class:`~common.exceptions.DatasetError` naming the file and
the line (or row): a missing column, an empty text, a label with fewer than :data:`MIN_PER_LABEL` articles, a
single label, text not in the expected encoding. The same article twice is kept once, with a warning; the
copies under another label are counted apart (``conflicting``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from common.articles import article_from_text
from common.exceptions import DatasetError, LabelSetError
from common.labels import LIVEDOOR, SLUGS, LabelSet, check_label
from training.corpus import CorpusArticle, load_corpus

log = logging.getLogger(__name__)

DataKind = Literal["livedoor", "csv", "jsonl", "parquet", "folder"]
TABLE_KINDS: dict[str, DataKind] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
}
# The columns of a table; ``text`` and ``label`` are required.
REQUIRED_COLUMNS = ("text", "label")
OPTIONAL_COLUMNS = ("title", "id")
# Fewer articles than this under one label cannot be split 8:1:1 (one test and one validation article at least).
MIN_PER_LABEL = 10
# Rows named in an error message at most.
SHOWN_ROWS = 5


@dataclass(frozen=True)
class LabelledData:
    """The articles of a dataset (``CorpusArticle.slug`` is the label), its label set and what was dropped."""

    articles: list[CorpusArticle]
    labels: LabelSet
    kind: DataKind
    source: str
    duplicates: int = 0  # later copies of an article, skipped
    conflicting: int = 0  # of those, copies under another label than the kept one

    def facts(self) -> dict[str, Any]:
        """For training.json and the model card: the format, the counts per label, the duplicates skipped."""
        counts = Counter(a.slug for a in self.articles)
        return {
            "kind": self.kind,
            "source": self.source,
            "articles": len(self.articles),
            "per_label": {label: counts[label] for label in self.labels},
            "duplicates_skipped": self.duplicates,
            "conflicting_duplicates": self.conflicting,
        }


@dataclass(frozen=True)
class _Row:
    where: str  # "file: line 3", "file: row 3", or a .txt file's path
    id: str | None
    title: str
    text: str
    label: str


# -- which format ---------------------------------------------------------------------------------


def _is_livedoor_folder(folder: Path) -> bool:
    if (folder / "text").is_dir():
        return True
    return any(next((folder / slug).glob(f"{slug}-[0-9]*.txt"), None) is not None for slug in SLUGS)


def data_kind(source: str | Path) -> DataKind:
    """The format of ``source``: a table by its suffix, a folder per label, else the livedoor corpus."""
    text = str(source)
    if text.startswith(("http://", "https://")):
        return "livedoor"
    path = Path(text).expanduser()
    kind = TABLE_KINDS.get(path.suffix.lower())
    if kind is not None:
        return kind
    if path.is_dir() and not _is_livedoor_folder(path):
        return "folder"
    return "livedoor"


def split_file_name(source: str | Path, seed: int) -> str:
    """The split file's default name: ``split-seed<N>.jsonl`` for livedoor (as always), else one per dataset,
    ``split-<name>-<digest of its path>-seed<N>.jsonl``."""
    if data_kind(source) == "livedoor":
        return f"split-seed{seed}.jsonl"
    path = Path(str(source)).expanduser().resolve()
    digest = hashlib.sha256(str(path).encode("utf-8")).hexdigest()[:8]
    return f"split-{path.stem or 'data'}-{digest}-seed{seed}.jsonl"


# -- reading --------------------------------------------------------------------------------------


def _decode(path: Path, encoding: str) -> str:
    """The file's text in ``encoding`` (UTF-8 also without its byte-order mark); a clear error naming the line."""
    data = path.read_bytes()
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        return data.decode(codec)
    except LookupError:
        ja = f"文字コード {encoding!r} は使えません。"
        raise DatasetError(str(path), ja, f"unknown encoding {encoding!r}.") from None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        looks = ""
        try:
            data.decode("cp932")
            looks = " It looks like Shift_JIS (cp932), as Excel saves CSV in Japanese."
            looks_ja = " Shift_JIS (cp932、Excel の日本語 CSV) のようです。"
        except UnicodeDecodeError:
            looks_ja = ""
        raise DatasetError(
            f"{path}: line {line}",
            f"{encoding} として読めません (バイト 0x{data[exc.start]:02x})。{looks_ja}"
            "UTF-8 で保存し直すか、文字コードを --data-encoding で指定してください (例: --data-encoding cp932)。",
            f"not readable as {encoding} (byte 0x{data[exc.start]:02x}); {encoding} is expected.{looks} "
            "Save the file as UTF-8, or name its encoding with --data-encoding (e.g. --data-encoding cp932).",
        ) from None


def _missing(where: str, missing: list[str], found: list[str]) -> DatasetError:
    names = ", ".join(f"'{m}'" for m in missing)
    return DatasetError(
        where,
        f"列 {names} がありません (見つかった列: {found})。必要な列は text と label、任意で title と id です。",
        f"missing column(s) {names} (columns found: {found}); required are text and label, optional title and id.",
    )


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(type(value).__name__)
    return str(value)


def _row(where: str, record: Mapping[str, Any]) -> _Row:
    """One article of a table row; raises :class:`DatasetError` naming ``where`` for an unusable row."""
    try:
        text, label = _cell(record.get("text")).strip(), _cell(record.get("label")).strip()
        title, article_id = _cell(record.get("title")).strip(), _cell(record.get("id")).strip()
    except TypeError as exc:
        raise DatasetError(
            where,
            f"text / title / label / id は文字列 (label と id は整数も可) にしてください ({exc} でした)。",
            f"text, title, label and id must be strings (label and id may be integers), not {exc}.",
        ) from None
    if not text:
        raise DatasetError(where, "本文 (text) が空です。", "the text is empty.")
    if not label:
        raise DatasetError(where, "ラベル (label) が空です。", "the label is empty.")
    try:
        check_label(label)
    except LabelSetError as exc:
        ja = f"ラベル {label!r} は使えません: {exc}"
        raise DatasetError(where, ja, f"label {label!r} cannot be used: {exc}") from None
    return _Row(where, article_id or None, title, text, label)


def _read_csv(path: Path, encoding: str) -> Iterator[_Row]:
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 26))
    reader = csv.DictReader(io.StringIO(_decode(path, encoding), newline=""))
    try:
        header = [name.strip().lower() for name in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise DatasetError(f"{path}: line 1", f"CSV として読めません: {exc}", f"not a CSV file: {exc}") from None
    if not header:
        raise DatasetError(str(path), "空のファイルです。", "the file is empty.")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise _missing(f"{path}: line 1 (header)", missing, header)
    reader.fieldnames = header
    line = reader.line_num
    number = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DatasetError(f"{path}: line {line + 1}", f"CSV として読めません: {exc}", f"bad CSV: {exc}") from None
        number += 1
        yield _row(f"{path}: line {line + 1} (row {number})", record)
        line = reader.line_num


def _read_jsonl(path: Path, encoding: str) -> Iterator[_Row]:
    for number, line in enumerate(_decode(path, encoding).splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}: line {number}"
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise DatasetError(where, f"JSON として読めません: {exc}", f"not JSON: {exc}") from None
        if not isinstance(record, dict):
            raise DatasetError(
                where,
                'JSON Lines は 1 行に 1 つのオブジェクト {"text": …, "label": …} です。',
                'JSON Lines hold one object {"text": …, "label": …} per line.',
            )
        missing = [c for c in REQUIRED_COLUMNS if c not in record]
        if missing:
            raise _missing(where, missing, sorted(record))
        yield _row(where, record)


def _read_parquet(path: Path, cache_dir: Path | None) -> Iterator[_Row]:
    from datasets import Dataset
    from datasets.exceptions import DatasetGenerationError

    try:
        table = Dataset.from_parquet(
            str(path), keep_in_memory=True, cache_dir=None if cache_dir is None else str(cache_dir / "datasets")
        )
    except (OSError, ValueError, DatasetGenerationError) as exc:  # pyarrow's errors are OSError or ValueError
        raise DatasetError(
            str(path), f"Parquet ファイルとして読めません: {exc}", f"not readable as Parquet: {exc}"
        ) from None
    assert isinstance(table, Dataset)
    columns = [name.lower() for name in table.column_names]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise _missing(f"{path} (columns)", missing, columns)
    renamed = {name: name.lower() for name in table.column_names if name != name.lower()}
    if renamed:
        table = table.rename_columns(renamed)
    for number, record in enumerate(table, 1):
        yield _row(f"{path}: row {number}", record)


def _read_folder(folder: Path, encoding: str) -> Iterator[_Row]:
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(p for p in sub.glob("*.txt") if p.is_file() and not p.name.startswith(".")):
            article = article_from_text(_decode(path, encoding))
            yield _row(str(path), {"title": article.title, "text": article.body, "label": sub.name})


def _rows(path: Path, kind: DataKind, encoding: str, cache_dir: Path | None) -> list[_Row]:
    if not path.exists():
        raise DatasetError(str(path), "ファイルがありません。", "no such file or folder.")
    if kind == "csv":
        return list(_read_csv(path, encoding))
    if kind == "jsonl":
        return list(_read_jsonl(path, encoding))
    if kind == "parquet":
        return list(_read_parquet(path, cache_dir))
    return list(_read_folder(path, encoding))


# -- checking -------------------------------------------------------------------------------------


def text_id(title: str, text: str) -> str:
    """An article's id from its title and text, whitespace ignored: the same article always gets the same id."""
    key = "".join(f"{title}\n{text}".split())
    return "text-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def _unique(rows: list[_Row]) -> tuple[list[CorpusArticle], int, int]:
    """The articles of ``rows`` with each article once (the first copy), the copies skipped and, of those, the
    ones under another label. Two rows naming the same ``id`` for different texts are an error."""
    kept: dict[str, _Row] = {}
    by_id: dict[str, _Row] = {}
    articles: list[CorpusArticle] = []
    duplicates = conflicting = 0
    for row in rows:
        key = text_id(row.title, row.text)
        first = kept.get(key)
        if first is not None:
            duplicates += 1
            if first.label != row.label:
                conflicting += 1
                log.warning("%s: the same article as %s, under another label (%r, not %r): skipped",
                            row.where, first.where, row.label, first.label)  # fmt: skip
            else:
                log.warning("%s: the same article as %s: skipped", row.where, first.where)
            continue
        article_id = row.id or key
        if article_id in by_id:
            raise DatasetError(
                row.where,
                f"id {article_id!r} は {by_id[article_id].where} でも使われています。"
                "id は記事ごとに一意にしてください。",
                f"id {article_id!r} is used by {by_id[article_id].where} too; ids must be unique per article.",
            )
        kept[key] = by_id[article_id] = row
        articles.append(CorpusArticle(article_id, row.label, "", "", row.title, row.text))
    return articles, duplicates, conflicting


def _check_labels(source: str, rows: list[_Row], articles: list[CorpusArticle]) -> list[str]:
    """The sorted labels; refuses one label only, and labels with fewer than :data:`MIN_PER_LABEL` articles."""
    counts = Counter(a.slug for a in articles)
    labels = sorted(counts)
    if len(labels) < 2:
        raise DatasetError(
            source,
            f"ラベルが 1 種類 ({labels}) しかありません。分類には 2 種類以上が必要です。",
            f"only one label ({labels}) was found; classifying needs at least two.",
        )
    small = [label for label in labels if counts[label] < MIN_PER_LABEL]
    if small:
        label = small[0]
        where = [r.where.removeprefix(f"{source}: ").removeprefix(f"{source}/") for r in rows if r.label == label]
        where = where[:SHOWN_ROWS]
        others = f" (also {small[1:]})" if len(small) > 1 else ""
        others_ja = f" (ほかに {small[1:]})" if len(small) > 1 else ""
        raise DatasetError(
            f"{source}: label {label!r} ({'; '.join(where)})",
            f"ラベル {label!r} の記事が {counts[label]} 件しかありません{others_ja}。"
            f"各ラベルに {MIN_PER_LABEL} 件以上必要です (8:1:1 に分けるため)。",
            f"label {label!r} has only {counts[label]} articles{others}; each label needs at least "
            f"{MIN_PER_LABEL} (to split them 8:1:1).",
        )
    return labels


def read_label_names(path: Path) -> dict[str, dict[str, str]]:
    """The display names in a labels file: YAML (``.yaml``/``.yml``) or JSON, ``{label: {ja: …, en: …}}``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        ja = f"ラベルファイルを読めません: {exc}"
        raise DatasetError(str(path), ja, f"cannot read the labels file: {exc}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise DatasetError(str(path), f"YAML として読めません: {exc}", f"not YAML: {exc}") from None
    else:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise DatasetError(str(path), f"JSON として読めません: {exc}", f"not JSON: {exc}") from None
    shape = "{label: {ja: …, en: …}}"
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise DatasetError(str(path), f"ラベルファイルの形式は {shape} です。", f"a labels file is {shape}.")
    return {str(label): {str(k): str(v) for k, v in names.items()} for label, names in data.items()}


def with_label_names(labels: LabelSet, labels_file: Path | None) -> LabelSet:
    """``labels`` with the display names of ``labels_file`` (none: as they are)."""
    if labels_file is None:
        return labels
    names = read_label_names(labels_file)
    try:
        return labels.with_names(names)
    except LabelSetError as exc:
        raise DatasetError(
            str(labels_file),
            f"ラベルファイルがデータにないラベルを含むか、形式が違います: {exc} (データのラベル: {list(labels)})",
            f"{exc} (the data's labels: {list(labels)})",
        ) from None


def load_labelled(
    source: str | Path,
    *,
    cache_dir: Path | None = None,
    strip_leaks: bool = True,
    encoding: str = "utf-8",
    labels_file: Path | None = None,
) -> LabelledData:
    """Read and check the dataset at ``source`` (see the module docstring); nothing is written anywhere."""
    kind = data_kind(source)
    if kind == "livedoor":
        articles = load_corpus(source, cache_dir=cache_dir, strip_leaks=strip_leaks)
        return LabelledData(articles, with_label_names(LIVEDOOR, labels_file), kind, str(source))
    path = Path(str(source)).expanduser()
    rows = _rows(path, kind, encoding, cache_dir)
    if not rows:
        raise DatasetError(str(path), "記事が 1 件もありません。", "no articles found.")
    articles, duplicates, conflicting = _unique(rows)
    if duplicates:
        log.warning("%s: %d duplicate articles skipped (%d of them under another label)", path, duplicates,
                    conflicting)  # fmt: skip
    labels = LabelSet(tuple(_check_labels(str(path), rows, articles)))
    log.info("%s: %d articles, %d labels %s", path, len(articles), len(labels), list(labels))
    return LabelledData(articles, with_label_names(labels, labels_file), kind, str(source), duplicates, conflicting)
