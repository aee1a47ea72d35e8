"""An article (title + main text) out of a fetched page, with trafilatura; nothing usable is said, not guessed.

:func:`fetch_article` is what the worker calls for each link: fetch, then extract, in one time budget, and
whatever goes wrong with that one link comes out as that link's :class:`~common.exceptions.LinkError`.

Extraction is bounded twice, since trafilatura's time grows with the markup (about 6 s per megabyte of tiny
nested tags such as ``<p><b><i>x`` repeated, on one core): the HTML handed to it is cut at
:data:`MAX_EXTRACT_CHARS` (a longer page first loses its ``<script>``, ``<style>`` and comments, which hold no
article text), and it runs in a helper thread that is given up on when the link's time is used up. A parser cannot be
interrupted, so a given-up thread finishes on its own; the character cap bounds what it can still cost.
"""

from __future__ import annotations

import logging
import re
import time

import trafilatura

from common.articles import Article, clean_text
from common.exceptions import LinkError, UnusableArticleError
from worker.fetch import FetchedPage, GuardedFetcher, call_with_timeout

log = logging.getLogger(__name__)

# Less main text than this (characters, after clean-up) is not an article: a teaser, a paywall, an index page.
MIN_BODY_CHARS = 100
# At most this much HTML (characters) goes to the extractor; a longer page loses its scripts, styles and comments
# first. Far more than an article page's markup, and a few seconds of extraction for the most pathological one.
MAX_EXTRACT_CHARS = 500_000
# Extraction time when no link deadline applies (article_from_page called on its own).
EXTRACT_TIMEOUT_S = 10.0
# A page fetched just before the link's deadline still gets this long to be extracted.
MIN_EXTRACT_S = 1.0
_TITLE_SUFFIX = re.compile(r"\s*[|｜\-–—:：]\s*[^|｜\-–—:：]{1,40}$")
# Opening <script>/<style>/comment, and what closes each; searched for by hand so the scan stays linear.
_NOISE_OPEN = re.compile(r"<(script|style)\b|<!--", re.IGNORECASE)
_NOISE_CLOSE = {
    "script": re.compile(r"</script\s*>", re.IGNORECASE),
    "style": re.compile(r"</style\s*>", re.IGNORECASE),
    "": re.compile(r"-->"),
}


def _clean_title(title: str | None) -> str:
    """The page title without a trailing site name (``記事名 | サイト名``) when what is left is meaningful."""
    title = " ".join((title or "").split())
    stripped = _TITLE_SUFFIX.sub("", title)
    return stripped if len(stripped) >= 8 else title


def markup_for_extraction(html: str, max_chars: int = MAX_EXTRACT_CHARS) -> str:
    """``html`` itself when it is within ``max_chars``; else without scripts, styles and comments, cut at
    ``max_chars`` (linear in the input's length, however the tags nest or fail to close)."""
    if len(html) <= max_chars:
        return html
    kept: list[str] = []
    size = 0
    position = 0
    while size < max_chars:
        opening = _NOISE_OPEN.search(html, position, min(len(html), position + max_chars - size))
        end = opening.start() if opening else min(len(html), position + max_chars - size)
        kept.append(html[position:end])
        size += end - position
        if opening is None:
            break
        closing = _NOISE_CLOSE[(opening.group(1) or "").lower()].search(html, opening.end())
        if closing is None:
            break  # unclosed: the rest of the page is inside it
        position = closing.end()
    return "".join(kept)


def _extract_html(page: FetchedPage) -> tuple[str, str]:
    document = trafilatura.bare_extraction(
        markup_for_extraction(page.text),
        url=page.final_url,
        with_metadata=True,
        include_comments=False,
        include_tables=False,
    )
    if document is None:
        return "", ""
    return _clean_title(getattr(document, "title", None)), clean_text(getattr(document, "text", None) or "")


def article_from_page(page: FetchedPage, timeout_s: float = EXTRACT_TIMEOUT_S) -> Article:
    """The page's article; raises :class:`UnusableArticleError` when there is too little main text, or when
    extraction takes longer than ``timeout_s``."""
    if page.is_html:
        try:
            title, body = call_with_timeout(lambda: _extract_html(page), timeout_s, "extract")
        except TimeoutError:
            raise UnusableArticleError(page.url, f"extraction took longer than {timeout_s:.3g} s") from None
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


def fetch_article(fetcher: GuardedFetcher, url: str) -> Article:
    """The article at ``url``, fetched and extracted within about ``fetcher.timeout_s`` in all.

    Raises only :class:`~common.exceptions.LinkError` subclasses: any other exception while handling this link
    (a bug, a library's surprise, memory) is logged with its traceback and becomes a plain ``LinkError``, so
    one bad link never fails the message or the batch it came with.
    """
    started = time.monotonic()
    try:
        page = fetcher.fetch(url)
        left = fetcher.timeout_s - (time.monotonic() - started)
        return article_from_page(page, timeout_s=max(left, MIN_EXTRACT_S))
    except LinkError:
        raise
    except Exception as exc:  # one link's failure, whatever it is, stays that link's
        log.exception("link %s failed unexpectedly", url)
        raise LinkError(url, f"{type(exc).__name__}: {exc}") from exc
