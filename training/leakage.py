"""Category-revealing markers in livedoor articles, and removing them.

Many titles carry their site's tag (【Sports Watch】, 【ITライフハック】, 【デジ通】, [Galaxy_Report], …) and many
bodies end with the site's own navigation (■関連記事, ■関連リンク, 【MOVIE ENTERおすすめ特集】, "エスマックス（S-MAX）
on Twitter", …). A model trained on them learns the site, not the content, and does worse on articles from other
sites; so they are removed by default (``strip_leaks=False`` keeps them).
"""

from __future__ import annotations

import re

# A bracketed tag in a title: 【…】 or […] (series and site tags; a title's own words are never bracketed so).
_TITLE_TAG = re.compile(r"【[^】]{1,40}】|\[[^\]]{1,40}\]|［[^］]{1,40}］")
# Names of the nine sites and their recurring columns, as they appear in text.
SITE_NAMES = (
    "Sports Watch",
    "ITライフハック",
    "IT Life Hack",
    "デジ通",
    "家電チャンネル",
    "kaden channel",
    "MOVIE ENTER",
    "ムービーエンター",
    "独女通信",
    "S-MAX",
    "エスマックス",
    "smaxjp",
    "livedoor HOMME",
    "Peachy",
    "トピックニュース",
    "livedoor ニュース",
    "livedoorニュース",
    "ゼロから始めるスマートフォン",
)
_SITE_NAME = re.compile("|".join(re.escape(name) for name in SITE_NAMES), re.IGNORECASE)
# A line that starts the site's navigation block at the end of a body: everything from it on is dropped.
_NAVIGATION_HEAD = re.compile(
    r"^\s*(?:■|【|\[)\s*(?:関連記事|関連リンク|関連情報|関連サイト|おすすめ記事|MOVIE ENTERおすすめ特集|"
    r"ゼロから始めるスマートフォン|ITライフハック|S-MAX|エスマックス)"
)
# A byline naming the site ("記事執筆：ゼロから始めるスマートフォン"): dropped.
_BYLINE = re.compile(r"^\s*記事執筆[：:]")


def strip_title(title: str) -> str:
    """The title without bracketed tags and site names (the words of the headline are kept)."""
    stripped = _SITE_NAME.sub(" ", _TITLE_TAG.sub(" ", title))
    return " ".join(stripped.split())


def strip_body(body: str) -> str:
    """The body without the site's trailing navigation block, its byline, and the sites' names."""
    kept: list[str] = []
    for line in body.splitlines():
        if _NAVIGATION_HEAD.match(line):
            break
        if _BYLINE.match(line):
            continue
        kept.append(_SITE_NAME.sub("", line))
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept).strip("\n")


def has_leak(text: str) -> bool:
    """Whether ``text`` still names a site or carries a bracketed title tag (used by tests and reports)."""
    return bool(_SITE_NAME.search(text) or _TITLE_TAG.search(text))
