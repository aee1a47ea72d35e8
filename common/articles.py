"""Turning a Slack message into what the model classifies: an :class:`Article` (title + body) or links.

Pure functions, shared by the bot (to refuse empty input before enqueueing) and the worker.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

# <@U123ABC> or <@U123ABC|name>: a user mention in Slack's message markup.
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
# <https://example.com|label> or <https://example.com>: a link in Slack's markup.
_SLACK_LINK = re.compile(r"<(https?://[^|>\s]+)(?:\|[^>]*)?>", re.IGNORECASE)
# Other Slack markup: channels, user groups, special mentions (<#C123|name>, <!here>, <!subteam^S1>).
_OTHER_MARKUP = re.compile(r"<[#!][^>]*>")
# A bare URL in plain text; stops at whitespace, angle brackets and Japanese punctuation.
_BARE_URL = re.compile(r"https?://[^\s<>「」『』（）()、。，]+", re.IGNORECASE)
_TRAILING_PUNCT = ".,;:!?)]}'\""

# A first line at most this long, followed by more text, is taken as the article's title.
_MAX_TITLE_CHARS = 120
# Text sent together with links is classified as an article of its own only from this length on;
# shorter text next to a link ("これ読んで", "what is this?") is a comment about the link, not an article.
MIN_TEXT_BESIDE_LINKS_CHARS = 200


@dataclass(frozen=True, slots=True)
class Article:
    """The unit the model classifies: a title (may be empty) and a body."""

    title: str
    body: str

    @property
    def text(self) -> str:
        return f"{self.title}\n{self.body}" if self.title else self.body


def strip_mentions(text: str) -> str:
    """Remove ``<@U…>`` user mentions (the bot's own and others') and trim."""
    return _MENTION.sub(" ", text).strip()


def clean_text(text: str) -> str:
    """Normalise what a user pasted: drop control characters and Slack markup, unescape, trim lines."""
    text = _unescape(_OTHER_MARKUP.sub(" ", strip_mentions(text)))
    kept = []
    for ch in text:
        if ch in "\n\t" or unicodedata.category(ch)[0] != "C":
            kept.append(ch)
        else:
            kept.append(" ")
    lines = [" ".join(line.split()) for line in "".join(kept).splitlines()]
    return "\n".join(line for line in lines if line).strip()


def _unescape(text: str) -> str:
    """Undo Slack's escaping of ``&``, ``<`` and ``>`` (``&amp;`` last, so ``&amp;lt;`` stays ``&lt;``)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def extract_urls(text: str) -> list[str]:
    """Links in a Slack message, in message order, without duplicates: Slack markup and bare URLs.

    Slack escapes ``&`` in the URLs it marks up (``?a=1&amp;b=2``); the URLs returned are unescaped.
    """
    found: list[tuple[int, str]] = [(m.start(), _unescape(m.group(1))) for m in _SLACK_LINK.finditer(text)]
    # Blank the markup out (same length, so positions hold) before looking for bare URLs.
    blanked = _SLACK_LINK.sub(lambda m: " " * len(m.group(0)), text)
    for match in _BARE_URL.finditer(blanked):
        url = _unescape(match.group(0).rstrip(_TRAILING_PUNCT))
        if len(url) > len("https://"):
            found.append((match.start(), url))
    unique: list[str] = []
    for _position, url in sorted(found):
        if url not in unique:
            unique.append(url)
    return unique


def remove_urls(text: str) -> str:
    """The message without its links, so pasted text next to a link is classified on its own."""
    return _BARE_URL.sub(" ", _SLACK_LINK.sub(" ", text))


def article_from_text(text: str) -> Article:
    """Make an :class:`Article` of pasted text: a short first line followed by more text is the title."""
    cleaned = clean_text(text)
    first, _, rest = cleaned.partition("\n")
    if rest.strip() and len(first) <= _MAX_TITLE_CHARS:
        return Article(title=first.strip(), body=rest.strip())
    return Article(title="", body=cleaned)


@dataclass(frozen=True, slots=True)
class MessageParts:
    """What one Slack message asks to classify: its links (at most ``max_links``) and/or pasted text."""

    urls: list[str]
    text: Article | None
    dropped_urls: int = 0


def has_words(text: str) -> bool:
    """Whether ``text`` has any letter (kana, kanji, Latin, …): emoji, digits and punctuation alone are no article."""
    return any(ch.isalpha() for ch in text)


def message_parts(message: str, max_links: int) -> MessageParts:
    """Split a message into links to fetch and pasted text to classify.

    Without links, the whole cleaned message is the article. With links, the links are the articles and the
    remaining text counts as an article too only when it is long enough to be one
    (:data:`MIN_TEXT_BESIDE_LINKS_CHARS`). Links beyond ``max_links`` are dropped and counted.
    """
    urls = extract_urls(message)
    kept, dropped = urls[:max_links], max(0, len(urls) - max_links)
    article = article_from_text(remove_urls(message) if urls else message)
    if not has_words(article.text) or (urls and len(article.text) < MIN_TEXT_BESIDE_LINKS_CHARS):
        return MessageParts(urls=kept, text=None, dropped_urls=dropped)
    return MessageParts(urls=kept, text=article, dropped_urls=dropped)


def has_article(message: str) -> bool:
    """The one emptiness rule, shared by the bot and the worker: does ``message`` hold a link or article text?

    A bare mention, emoji, digits or punctuation alone hold none: the bot answers those with its usage line
    instead of enqueueing them, and the worker, given one anyway, answers "nothing to classify".
    """
    parts = message_parts(message, max_links=1)
    return bool(parts.urls) or parts.text is not None


def message_text(message: dict[str, Any]) -> str:
    """A Slack message's text, plus the links of its unfurled attachments (a pasted link shows as one).

    Used for the message a shortcut was run on, a watched channel's message, and a thread's parent message.
    """
    parts = [message.get("text") or ""]
    for attachment in message.get("attachments") or []:
        link = attachment.get("from_url") or attachment.get("original_url") or attachment.get("title_link")
        if link and link not in parts[0]:
            parts.append(link)
    return "\n".join(p for p in parts if p)
