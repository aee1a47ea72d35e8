"""Slack's message markup (mrkdwn) for strings that come from outside: page titles, URLs, user text, file names.

Slack reads ``<…>`` as markup wherever a message has mrkdwn — the blocks *and* the plain ``text`` — so a page
titled ``<!channel>`` would notify a whole channel. Every outside string goes through :func:`escape` (or
:func:`link` for a URL) before it is put in a message; nothing else needs escaping. Shorten with
:func:`truncate` *before* escaping, so that a cut never falls inside ``&amp;`` or a ``<url|label>`` link.
"""

from __future__ import annotations

# A page title (or file name) shown in a message is cut to this many characters, with an ellipsis.
TITLE_MAX_CHARS = 150
# A URL longer than this is shown (cut) as text, not linked: a link cannot be shortened without breaking it.
LINK_MAX_URL_CHARS = 1000
ELLIPSIS = "…"


_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def escape(text: str, limit: int | None = None) -> str:
    """``text`` with ``&``, ``<`` and ``>`` escaped: shown as written, never read as a mention or a link.

    With ``limit``, the escaped text is at most that long: cut between characters (never inside ``&amp;``),
    ending with an ellipsis.
    """
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if limit is None or len(escaped) <= limit:
        return escaped
    kept: list[str] = []
    size = len(ELLIPSIS)
    for ch in text:
        piece = _ENTITIES.get(ch, ch)
        if size + len(piece) > limit:
            break
        kept.append(piece)
        size += len(piece)
    return "".join(kept).rstrip() + ELLIPSIS if limit >= len(ELLIPSIS) else ""


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending with an ellipsis when cut (raw text, not markup)."""
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    return text[: limit - len(ELLIPSIS)].rstrip() + ELLIPSIS


def one_line(text: str, limit: int = TITLE_MAX_CHARS) -> str:
    """A title for a message: whitespace (newlines included) collapsed, cut to ``limit`` characters. Not escaped."""
    return truncate(" ".join(text.split()), limit)


def link(url: str, label: str | None = None) -> str:
    """``<url|label>``: the label escaped (give it already cut), the URL made unable to end the markup early.

    A URL over :data:`LINK_MAX_URL_CHARS` is not linked: its label (or the URL itself), cut and escaped, is shown.
    """
    if len(url) > LINK_MAX_URL_CHARS:
        return escape(label or truncate(url, TITLE_MAX_CHARS))
    safe_url = url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C").replace(" ", "%20")
    return f"<{safe_url}|{escape(label)}>" if label else f"<{safe_url}>"
