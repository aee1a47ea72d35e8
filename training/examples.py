"""Extra labelled examples (corrections collected from Slack users), added to the training split only.

The file is JSONL, one example per line: ``{"title": "...", "body": "...", "slug": "..."}`` (what
:meth:`store.feedback.FeedbackStore.export_corrections` writes: the article as it was classified, title and body
apart), or ``{"text": "...", "slug": "..."}`` (pasted text, split into title and body as a Slack message is);
``"label"`` may stand for ``"slug"``. Other fields are ignored. Lines that are not JSON, have no text, name a
label that is not in the training data's label set, or repeat a test article's text are skipped and counted,
never fatal: one bad correction must not stop a retrain, and a test article must never be trained on.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.articles import Article, article_from_text
from common.labels import LIVEDOOR, LabelSet, normalise_label
from training.corpus import MAX_ARTICLE_CHARS, CorpusArticle
from training.dataset import MAX_ROW_CHARS, read_lines

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtraExamples:
    articles: list[CorpusArticle]
    skipped: int


def _text_key(text: str) -> str:
    return hashlib.sha256("".join(text.split()).encode("utf-8")).hexdigest()


def _article(row: Any) -> Article | None:
    """The example's article: its title and body as given, or its pasted ``text`` split; None without text."""
    if not isinstance(row, dict):
        return None
    title, body, text = row.get("title", ""), row.get("body"), row.get("text")
    if isinstance(body, str) and isinstance(title, str):
        return Article(title=title.strip(), body=body.strip())
    return article_from_text(text) if isinstance(text, str) else None


def load_extra_examples(
    path: Path | None, exclude: Iterable[CorpusArticle] = (), labels: LabelSet = LIVEDOOR
) -> ExtraExamples:
    """The usable examples in ``path`` as articles (id ``extra-<line>``), and how many lines were skipped.

    Only labels of ``labels`` (the training data's) are used: a correction to a label the data does not have
    is skipped.

    ``exclude`` (the test split) is compared on whitespace-free text: an example repeating one is skipped.
    """
    if path is None:
        return ExtraExamples([], 0)
    excluded = {_text_key(f"{a.title}\n{a.body}") for a in exclude} | {_text_key(a.body) for a in exclude}
    articles: list[CorpusArticle] = []
    skipped = 0
    for number, line in read_lines(path, "utf-8", MAX_ROW_CHARS):
        if line is None:  # over the bound: skipped unread
            log.warning("extra examples: line %d skipped (over %d characters)", number, MAX_ROW_CHARS)
            skipped += 1
            continue
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        article = _article(row)
        slug = (row.get("slug") or row.get("label")) if isinstance(row, dict) else None
        slug = normalise_label(slug) if isinstance(slug, str) else None
        if article is not None and len(article.title) + len(article.body) > MAX_ARTICLE_CHARS:
            log.warning("extra examples: line %d skipped (over %d characters)", number, MAX_ARTICLE_CHARS)
            skipped += 1
            continue
        if article is None or slug is None or slug not in labels:
            log.warning("extra examples: line %d skipped (no text, or a label not in the data: %r)", number, slug)
            skipped += 1
            continue
        if not article.text.strip() or _text_key(article.text) in excluded or _text_key(article.body) in excluded:
            log.warning("extra examples: line %d skipped (empty, or the text of a test article)", number)
            skipped += 1
            continue
        articles.append(
            CorpusArticle(id=f"extra-{number}", slug=slug, url="", date="", title=article.title, body=article.body)
        )
    return ExtraExamples(articles, skipped)
