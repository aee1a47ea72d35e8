"""The fixed train/validation/test split (8:1:1, stratified by label), written to disk with article ids.

The split depends only on the article ids, their labels and the seed, never on the order they were read in, so
every retrain on the same data is judged on the same test articles. An article of a file without ids has the
digest of its text as id (:func:`training.dataset.text_id`), so the same file gives the same split. The split
file holds one line per article: ``{"id", "slug", "split"}`` (``slug`` is the label; ids only: the text itself
is read from the data).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from common.exceptions import CorpusError
from training.corpus import CorpusArticle

SplitName = Literal["train", "validation", "test"]
SPLITS: tuple[SplitName, ...] = ("train", "validation", "test")
DEFAULT_SEED = 42


@dataclass(frozen=True)
class Split:
    """Articles per split, each list in corpus order."""

    train: list[CorpusArticle]
    validation: list[CorpusArticle]
    test: list[CorpusArticle]

    def of(self, name: SplitName) -> list[CorpusArticle]:
        return {"train": self.train, "validation": self.validation, "test": self.test}[name]

    @property
    def test_fingerprint(self) -> str:
        return fingerprint(a.id for a in self.test)


def fingerprint(ids: Iterable[str]) -> str:
    """A short digest of a set of article ids: two models are compared only on the same test fingerprint."""
    return hashlib.sha256("\n".join(sorted(ids)).encode("utf-8")).hexdigest()[:16]


def assign(articles: Sequence[tuple[str, str]], seed: int = DEFAULT_SEED) -> dict[str, SplitName]:
    """Split name per article id, from (id, label) pairs: per label, 10% test, 10% validation, the rest train.

    Per label the ids are sorted, shuffled with ``seed``, and cut at round(n/10) and round(2n/10).
    """
    by_slug: dict[str, list[str]] = {}
    for article_id, slug in articles:
        by_slug.setdefault(slug, []).append(article_id)
    names: dict[str, SplitName] = {}
    for slug in sorted(by_slug):
        ids = sorted(by_slug[slug])
        random.Random(f"{seed}:{slug}").shuffle(ids)  # noqa: S311 (reproducible, not secret)
        n_test = round(len(ids) / 10)
        n_val = round(len(ids) * 2 / 10) - n_test
        for i, article_id in enumerate(ids):
            names[article_id] = "test" if i < n_test else "validation" if i < n_test + n_val else "train"
    return names


def split_articles(articles: Sequence[CorpusArticle], names: dict[str, SplitName]) -> Split:
    parts: dict[SplitName, list[CorpusArticle]] = {name: [] for name in SPLITS}
    for article in articles:
        name = names.get(article.id)
        if name is None:
            raise CorpusError(f"article {article.id} is not in the split file; run `python -m training prepare`")
        parts[name].append(article)
    return Split(train=parts["train"], validation=parts["validation"], test=parts["test"])


def write_split(path: Path, articles: Sequence[CorpusArticle], names: dict[str, SplitName]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for article in articles:
            out.write(json.dumps({"id": article.id, "slug": article.slug, "split": names[article.id]}) + "\n")
    tmp.replace(path)


def read_split(path: Path) -> dict[str, SplitName]:
    names: dict[str, SplitName] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row, dict) or row.get("split") not in SPLITS or not isinstance(row.get("slug"), str):
            raise CorpusError(f"{path}:{number}: not a split line: {line[:80]}")
        names[str(row["id"])] = row["split"]
    return names


def load_or_create_split(articles: Sequence[CorpusArticle], path: Path, seed: int = DEFAULT_SEED) -> Split:
    """The split stored at ``path`` (created there first if absent), applied to ``articles``.

    An existing file is reused as it is, so the test articles stay the same across retrains; articles the
    file does not know (a newer corpus) are assigned with the same rule and the file is extended.
    """
    names = read_split(path) if path.is_file() else {}
    unknown = [a for a in articles if a.id not in names]
    if unknown or not path.is_file():
        fresh = assign([(a.id, a.slug) for a in articles], seed)
        for article in unknown:
            names[article.id] = fresh[article.id]
        write_split(path, articles, names)
    return split_articles(articles, names)
