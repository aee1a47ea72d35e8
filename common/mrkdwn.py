"""Slack's message markup (mrkdwn) for strings that come from outside: page titles, URLs, user text, file names.

Slack reads ``<…>`` as markup wherever a message has mrkdwn — the blocks *and* the plain ``text`` — so a page
titled ``<!channel>`` would notify a whole channel. Every outside string goes through :func:`escape` (or
:func:`link` for a URL) before it is put in a message. Shorten with :func:`truncate` *before* escaping, so that
a cut never falls inside ``&amp;`` or a ``<url|label>`` link.

Backticks: Slack has no escape for a backtick, and one inside a dataset's label or a page's title would open (or
close) a code span and garble the rest of the line. Text from a dataset, a page or a user is therefore shown with
:func:`literal` (escaped, each backtick replaced by :data:`BACKTICK_STANDIN`, ``ˋ``, which looks the same) or,
inside a code span, with :func:`code`. :func:`escape` alone keeps backticks: it is for our own words (an
exception's ``user_message``), whose code spans are meant. ``*``, ``_`` and ``~`` are left as they are: at worst
a label reads bold or italic, it cannot notify anyone or break the message.
"""

from __future__ import annotations

# A page title (or file name) shown in a message is cut to this many characters, with an ellipsis.
TITLE_MAX_CHARS = 150
# A URL longer than this is shown (cut) as text, not linked: a link cannot be shortened without breaking it.
LINK_MAX_URL_CHARS = 1000
ELLIPSIS = "…"
# What a backtick in outside text is shown as (U+02CB MODIFIER LETTER GRAVE ACCENT): it cannot open a code span.
BACKTICK_STANDIN = "\u02cb"


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


def literal(text: str, limit: int | None = None) -> str:
    r"""``text`` from outside (a label, title, user string or error detail) for mrkdwn: :func:`escape`\ d, and each
    backtick replaced by :data:`BACKTICK_STANDIN`, so that it can neither mention anyone nor open a code span."""
    return escape(text.replace("`", BACKTICK_STANDIN), limit)


def code(text: str, limit: int | None = None) -> str:
    """``text`` from outside as an inline code span: :func:`literal`, on one line, between backticks."""
    return f"`{literal(' '.join(text.split()) or text, limit)}`"


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
        return literal(label or truncate(url, TITLE_MAX_CHARS))
    safe_url = url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C").replace(" ", "%20")
    return f"<{safe_url}|{literal(label)}>" if label else f"<{safe_url}>"
