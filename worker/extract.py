"""An article (title + main text) out of a fetched page, with trafilatura; nothing usable is said, not guessed."""

from __future__ import annotations

import re

import trafilatura

from common.articles import Article, clean_text
from common.exceptions import UnusableArticleError
from worker.fetch import FetchedPage

# Less main text than this (characters, after clean-up) is not an article: a teaser, a paywall, an index page.
MIN_BODY_CHARS = 100
_TITLE_SUFFIX = re.compile(r"\s*[|｜\-–—:：]\s*[^|｜\-–—:：]{1,40}$")


def _clean_title(title: str | None) -> str:
    """The page title without a trailing site name (``記事名 | サイト名``) when what is left is meaningful."""
    title = " ".join((title or "").split())
    stripped = _TITLE_SUFFIX.sub("", title)
    return stripped if len(stripped) >= 8 else title


def article_from_page(page: FetchedPage) -> Article:
    """The page's article; raises :class:`UnusableArticleError` when there is too little main text."""
    if page.is_html:
        document = trafilatura.bare_extraction(
            page.text, url=page.final_url, with_metadata=True, include_comments=False, include_tables=False
        )
        title = _clean_title(getattr(document, "title", None)) if document is not None else ""
        body = clean_text(getattr(document, "text", None) or "") if document is not None else ""
    else:
        cleaned = clean_text(page.text)
        first, _, rest = cleaned.partition("\n")
        title, body = (first, rest) if rest and len(first) <= 120 else ("", cleaned)
    if title and body.startswith(title):
        body = body[len(title) :].lstrip()
    if len(body) < MIN_BODY_CHARS:
        detail = f"{len(body)} characters of main text" + (" (page cut at the size limit)" if page.truncated else "")
        raise UnusableArticleError(page.url, detail)
    return Article(title=title, body=body)
