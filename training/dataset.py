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

import codecs
import csv
import hashlib
import io
import json
import logging
import re
from codecs import BOM_UTF8
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from common.articles import article_from_text
from common.exceptions import DatasetError, LabelSetError
from common.labels import LIVEDOOR, SLUGS, LabelSet, check_label, normalise_label
from training.corpus import MAX_ARTICLE_CHARS, MAX_BYTES_PER_CHAR, CorpusArticle, load_corpus

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
# One row of a table (all its cells together, also columns that are not used; a JSON line with its syntax) is
# at most this many characters. It is what the reader holds at once, so a longer row is refused unread.
MAX_ROW_CHARS = 2 * MAX_ARTICLE_CHARS
# Parquet rows turned into Python objects at once.
PARQUET_BATCH_ROWS = 64


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
    label: str  # normalised (common.labels.normalise_label)
    raw_label: str  # as the file spells it


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


def _codec(path: Path, encoding: str) -> str:
    """The codec for ``encoding`` (UTF-8 also without its byte-order mark); a clear error for an unknown one."""
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        codecs.lookup(codec)
    except LookupError:
        ja = f"文字コード {encoding!r} は使えません。"
        raise DatasetError(str(path), ja, f"unknown encoding {encoding!r}.") from None
    return codec


def _ascii_compatible(codec: str) -> bool:
    """Whether ``codec`` writes ASCII as ASCII (UTF-8, Shift_JIS, EUC-JP…): its lines can be split on b"\\n"."""
    sample = '\n,"{}:abc'
    return codecs.getincrementalencoder(codec)().encode(sample).removeprefix(BOM_UTF8) == sample.encode("ascii")


def _undecodable(where: str, encoding: str, data: bytes, start: int) -> DatasetError:
    looks = looks_ja = ""
    try:
        data.decode("cp932")
        looks = " It looks like Shift_JIS (cp932), as Excel saves CSV in Japanese."
        looks_ja = " Shift_JIS (cp932、Excel の日本語 CSV) のようです。"
    except UnicodeDecodeError:
        pass
    byte = f"0x{data[start]:02x}" if start < len(data) else "?"
    return DatasetError(
        where,
        f"{encoding} として読めません (バイト {byte})。{looks_ja}"
        "UTF-8 で保存し直すか、文字コードを --data-encoding で指定してください (例: --data-encoding cp932)。",
        f"not readable as {encoding} (byte {byte}); {encoding} is expected.{looks} "
        "Save the file as UTF-8, or name its encoding with --data-encoding (e.g. --data-encoding cp932).",
    )


def _decode(path: Path, data: bytes, encoding: str) -> str:
    """``data`` (a whole small file) in ``encoding``; a clear error naming the line."""
    try:
        return data.decode(_codec(path, encoding))
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _undecodable(f"{path}: line {line}", encoding, data, exc.start) from None


def read_lines(path: Path, encoding: str, max_chars: int) -> Iterator[tuple[int, str | None]]:
    """The file's lines (with their line break) and their numbers, read one at a time: never more than one line of
    at most ``max_chars`` characters (``4 × max_chars`` bytes) in memory. A longer line is given as None and the
    rest of it is skipped in bounded pieces, unkept."""
    codec = _codec(path, encoding)
    with path.open("rb") as handle:
        if _ascii_compatible(codec):
            decoder = codecs.getincrementaldecoder(codec)()
            limit = MAX_BYTES_PER_CHAR * max_chars
            number = 0
            while raw := handle.readline(limit + 1):
                number += 1
                if len(raw) > limit:
                    while not raw.endswith(b"\n") and (raw := handle.readline(limit)):
                        pass
                    yield number, None
                    continue
                try:
                    text = decoder.decode(raw)
                except UnicodeDecodeError as exc:
                    raise _undecodable(f"{path}: line {number}", encoding, raw, exc.start) from None
                yield number, (text if len(text) <= max_chars else None)
            try:
                decoder.decode(b"", final=True)  # a character cut off at the end of the file
            except UnicodeDecodeError:
                raise _undecodable(f"{path}: line {number}", encoding, raw, 0) from None
            return
        # UTF-16, UTF-32: decoded as a stream, a line at a time (a decoding error is named near its line)
        stream = io.TextIOWrapper(handle, encoding=codec, newline="\n")
        number = 0
        while True:
            try:
                text = stream.readline(max_chars + 1)
                over = len(text) > max_chars
                rest = text
                while over and not rest.endswith("\n") and (rest := stream.readline(max_chars)):
                    pass
            except UnicodeDecodeError as exc:
                raise _undecodable(f"{path}: near line {number + 1}", encoding, exc.object, exc.start) from None
            if not text:
                return
            number += 1
            yield number, None if over else text


def _too_long(where: str, limit: int) -> DatasetError:
    return DatasetError(
        where,
        f"行が {limit:,} 文字を超えています (すべての列の合計; 記事は {MAX_ARTICLE_CHARS:,} 文字まで)。",
        f"the row is longer than {limit:,} characters (all its cells together; an article may have at most "
        f"{MAX_ARTICLE_CHARS:,}).",
    )


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
        text, raw_label = _cell(record.get("text")).strip(), _cell(record.get("label")).strip()
        title, article_id = _cell(record.get("title")).strip(), _cell(record.get("id")).strip()
    except TypeError as exc:
        raise DatasetError(
            where,
            f"text / title / label / id は文字列 (label と id は整数も可) にしてください ({exc} でした)。",
            f"text, title, label and id must be strings (label and id may be integers), not {exc}.",
        ) from None
    if not text:
        raise DatasetError(where, "本文 (text) が空です。", "the text is empty.")
    size = len(title) + len(text)
    if size > MAX_ARTICLE_CHARS:
        raise DatasetError(
            where,
            f"記事が長すぎます (タイトルと本文で {size:,} 文字、上限は {MAX_ARTICLE_CHARS:,} 文字)。",
            f"the article is too long ({size:,} characters of title and text; at most {MAX_ARTICLE_CHARS:,}).",
        )
    label = normalise_label(raw_label)
    if not label:
        raise DatasetError(where, "ラベル (label) が空です。", "the label is empty.")
    try:
        check_label(label)
    except LabelSetError as exc:
        ja = f"ラベル {raw_label!r} は使えません: {exc}"
        raise DatasetError(where, ja, f"label {raw_label!r} cannot be used: {exc}") from None
    return _Row(where, article_id or None, title, text, label, raw_label)


def _read_csv(path: Path, encoding: str) -> Iterator[_Row]:
    # A record spans lines when a quoted cell holds line breaks: the lines are counted together, so that no
    # record of more than MAX_ROW_CHARS characters is ever held.
    state = {"chars": 0, "start": 1, "row": 0}

    def feed() -> Iterator[str]:
        for _number, text in read_lines(path, encoding, MAX_ROW_CHARS):
            state["chars"] += MAX_ROW_CHARS + 1 if text is None else len(text)
            if state["chars"] > MAX_ROW_CHARS:
                where = f"line {state['start']}" + (f" (row {state['row'] + 1})" if state["row"] >= 0 else "")
                raise _too_long(f"{path}: {where}", MAX_ROW_CHARS)
            assert text is not None
            yield text

    reader = csv.reader(feed())
    state["row"] = -1  # the header
    try:
        header_row = next(reader, None)
    except csv.Error as exc:
        raise DatasetError(f"{path}: line 1", f"CSV として読めません: {exc}", f"not a CSV file: {exc}") from None
    header = [name.strip().lower() for name in (header_row or [])]
    if not header:
        raise DatasetError(str(path), "空のファイルです。", "the file is empty.")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise _missing(f"{path}: line 1 (header)", missing, header)
    number = 0
    while True:
        state.update(chars=0, start=reader.line_num + 1, row=number)
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            where = f"{path}: line {state['start']}"
            raise DatasetError(where, f"CSV として読めません: {exc}", f"bad CSV: {exc}") from None
        if not cells:
            continue
        number += 1
        yield _row(f"{path}: line {state['start']} (row {number})", dict(zip(header, cells, strict=False)))


def _read_jsonl(path: Path, encoding: str) -> Iterator[_Row]:
    for number, line in read_lines(path, encoding, MAX_ROW_CHARS):
        where = f"{path}: line {number}"
        if line is None:
            raise _too_long(where, MAX_ROW_CHARS)
        if not line.strip():
            continue
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


def _read_parquet(path: Path) -> Iterator[_Row]:
    """The rows of a Parquet file, a row group at a time in batches of :data:`PARQUET_BATCH_ROWS`, only the four
    columns read; a row's size is measured in Arrow before it becomes Python strings."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    def unreadable(exc: Exception) -> DatasetError:
        reason = " ".join(str(exc).split())
        return DatasetError(
            str(path), f"Parquet ファイルとして読めません: {reason}", f"not readable as Parquet: {reason}"
        )

    try:
        table = pq.ParquetFile(path)
    except (OSError, ValueError, pa.ArrowException) as exc:  # pyarrow's errors are OSError or ValueError
        raise unreadable(exc) from None
    with table:
        names = {name.lower(): name for name in table.schema_arrow.names}
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise _missing(f"{path} (columns)", missing, list(names))
        wanted = [names[c] for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in names]
        number = 0
        try:
            for batch in table.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=wanted):
                sizes = None
                for column in batch.columns:
                    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                        length = pc.fill_null(pc.utf8_length(column), 0)
                        sizes = length if sizes is None else pc.add(sizes, length)
                if sizes is not None and pc.max(sizes).as_py() > MAX_ROW_CHARS:
                    first = int(pc.index(pc.greater(sizes, MAX_ROW_CHARS), True).as_py())
                    raise _too_long(f"{path}: row {number + first + 1}", MAX_ROW_CHARS)
                for record in batch.to_pylist():
                    number += 1
                    yield _row(f"{path}: row {number}", {key.lower(): value for key, value in record.items()})
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise unreadable(exc) from None


def _read_folder(folder: Path, encoding: str) -> Iterator[_Row]:
    limit = MAX_BYTES_PER_CHAR * MAX_ARTICLE_CHARS + len(BOM_UTF8)
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(p for p in sub.glob("*.txt") if p.is_file() and not p.name.startswith(".")):
            with path.open("rb") as handle:
                data = handle.read(limit + 1)
            if len(data) > limit:
                size = path.stat().st_size
                raise DatasetError(
                    str(path),
                    f"記事が長すぎます ({size:,} バイト、上限は {MAX_ARTICLE_CHARS:,} 文字)。",
                    f"the article is too long ({size:,} bytes; at most {MAX_ARTICLE_CHARS:,} characters).",
                )
            article = article_from_text(_decode(path, data, encoding))
            yield _row(str(path), {"title": article.title, "text": article.body, "label": sub.name})


def _rows(path: Path, kind: DataKind, encoding: str) -> list[_Row]:
    """Every row of the file, read as a stream (a line, a Parquet batch or a ``.txt`` file at a time); a label
    written two ways that normalise alike is refused at its second spelling (:func:`normalise_label`)."""
    if not path.exists():
        raise DatasetError(str(path), "ファイルがありません。", "no such file or folder.")
    if kind == "csv":
        rows = _read_csv(path, encoding)
    elif kind == "jsonl":
        rows = _read_jsonl(path, encoding)
    elif kind == "parquet":
        rows = _read_parquet(path)
    else:
        rows = _read_folder(path, encoding)
    spelled: dict[str, _Row] = {}
    kept: list[_Row] = []
    for row in rows:
        first = spelled.setdefault(row.label, row)
        if first.raw_label != row.raw_label:
            raise _lookalike(row.where, row.raw_label, first.raw_label, first.where, row.label)
        kept.append(row)
    return kept


def _lookalike(where: str, label: str, other: str, other_where: str, normal: str) -> DatasetError:
    return DatasetError(
        where,
        f"ラベル {label!r} は {other_where} の {other!r} と同じラベルです (Unicode NFKC で正規化すると {normal!r})。"
        "どちらかの書き方に揃えてください。",
        f"label {label!r} is the same label as {other!r} at {other_where} once normalised (Unicode NFKC: "
        f"{normal!r}); write it one way.",
    )


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


class _DuplicateKey(Exception):
    def __init__(self, key: str, line: int | None) -> None:
        super().__init__(key)
        self.key, self.line = key, line


def _yaml_loader() -> type[Any]:
    """PyYAML's safe loader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""
    import yaml

    class Loader(yaml.SafeLoader):  # type: ignore[misc]
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, str | int | float | bool) or key is None:
                    if key in seen:
                        raise _DuplicateKey(str(key), key_node.start_mark.line + 1)
                    seen.add(key)
            return dict(super().construct_mapping(node, deep=deep))

    return Loader


def _json_key_line(text: str, key: str, occurrence: int) -> int | None:
    """The line of the ``occurrence``-th (1-based) object key spelled ``key`` in the JSON ``text``, if found."""
    found = 0
    for match in re.finditer(r'"(?:[^"\\]|\\.)*"\s*:', text):
        try:
            name = json.loads(match.group(0).rstrip().removesuffix(":").rstrip())
        except ValueError:
            continue
        if name == key:
            found += 1
            if found == occurrence:
                return text.count("\n", 0, match.start()) + 1
    return None


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key, None)
        seen[key] = value
    return seen


def read_label_names(path: Path) -> dict[str, dict[str, str]]:
    """The display names in a labels file: YAML (``.yaml``/``.yml``) or JSON, ``{label: {ja: …, en: …}}``, keyed
    by the normalised label (:func:`normalise_label`). A key given twice, or two labels that normalise alike, are
    refused with the line (YAML and JSON parsers would keep the last one silently)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        ja = f"ラベルファイルを読めません: {exc}"
        raise DatasetError(str(path), ja, f"cannot read the labels file: {exc}") from None
    yaml_file = path.suffix.lower() in (".yaml", ".yml")
    try:
        if yaml_file:
            import yaml

            try:
                data = yaml.load(text, Loader=_yaml_loader())  # noqa: S506 (a SafeLoader)
            except yaml.YAMLError as exc:
                reason = " ".join(str(exc).split())
                raise DatasetError(str(path), f"YAML として読めません: {reason}", f"not YAML: {reason}") from None
        else:
            try:
                data = json.loads(text, object_pairs_hook=_json_pairs)
            except ValueError as exc:
                raise DatasetError(str(path), f"JSON として読めません: {exc}", f"not JSON: {exc}") from None
    except _DuplicateKey as dup:
        line = dup.line if yaml_file else _json_key_line(text, dup.key, 2)
        where = f"{path}: line {line}" if line else str(path)
        raise DatasetError(
            where,
            f"キー {dup.key!r} が 2 回あります。1 回だけ書いてください (後のほうが黙って使われることはありません)。",
            f"the key {dup.key!r} is given twice; give it once (neither is silently preferred).",
        ) from None
    shape = "{label: {ja: …, en: …}}"
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise DatasetError(str(path), f"ラベルファイルの形式は {shape} です。", f"a labels file is {shape}.")
    names: dict[str, dict[str, str]] = {}
    spelled: dict[str, str] = {}
    for raw, given in data.items():
        label = normalise_label(str(raw))
        if label in spelled:
            first = spelled[label]
            where, first_where = (
                f"{path}: line {line}" if line else str(path)
                for line in (_key_line(text, name, yaml_file) for name in (str(raw), first))
            )
            raise _lookalike(where, str(raw), first, first_where, label)
        spelled[label] = str(raw)
        names[label] = {str(k): str(v) for k, v in given.items()}
    return names


def _key_line(text: str, key: str, yaml_file: bool) -> int | None:
    """The line of the top-level key ``key`` in a labels file, if found."""
    if not yaml_file:
        return _json_key_line(text, key, 1)
    import yaml

    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if isinstance(node, yaml.MappingNode):
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                return int(key_node.start_mark.line) + 1
    return None


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
    rows = _rows(path, kind, encoding)
    if not rows:
        raise DatasetError(str(path), "記事が 1 件もありません。", "no articles found.")
    articles, duplicates, conflicting = _unique(rows)
    if duplicates:
        log.warning("%s: %d duplicate articles skipped (%d of them under another label)", path, duplicates,
                    conflicting)  # fmt: skip
    labels = LabelSet(tuple(_check_labels(str(path), rows, articles)))
    log.info("%s: %d articles, %d labels %s", path, len(articles), len(labels), list(labels))
    return LabelledData(articles, with_label_names(labels, labels_file), kind, str(source), duplicates, conflicting)
