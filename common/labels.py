"""The nine livedoor news categories, in the fixed order that model outputs use.

The order is the label-id order of every model the product trains or serves: id 0 is ``topic-news``
and so on. A model folder's ``config.json`` carries ``id2label``/``label2id`` with these slugs; that is
the contract between training and serving.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.exceptions import UnknownCategoryError


@dataclass(frozen=True, slots=True)
class Category:
    """One livedoor category: its slug (the folder name in the corpus) and display names."""

    slug: str
    ja: str
    en: str

    @property
    def display(self) -> str:
        """Both names, as shown to users: ``スポーツ / Sports Watch``."""
        return f"{self.ja} / {self.en}"


CATEGORIES: tuple[Category, ...] = (
    Category("topic-news", "トピックニュース", "Topic News"),
    Category("sports-watch", "スポーツ", "Sports Watch"),
    Category("it-life-hack", "ITライフハック", "IT Life Hack"),
    Category("kaden-channel", "家電チャンネル", "Home Electronics"),
    Category("movie-enter", "映画・エンタメ", "Movies & Entertainment"),
    Category("dokujo-tsushin", "独女通信", "Single Women's Life"),
    Category("smax", "エスマックス (スマホ)", "S-MAX Smartphones"),
    Category("livedoor-homme", "livedoor HOMME (メンズ)", "Men's Lifestyle"),
    Category("peachy", "Peachy (女性向け)", "Women's Lifestyle"),
)

SLUGS: tuple[str, ...] = tuple(c.slug for c in CATEGORIES)
_BY_SLUG: dict[str, Category] = {c.slug: c for c in CATEGORIES}


def category(slug: str) -> Category:
    """The category for ``slug``; raises :class:`UnknownCategoryError` for anything else."""
    try:
        return _BY_SLUG[slug]
    except KeyError:
        raise UnknownCategoryError(slug) from None


def is_slug(value: str) -> bool:
    return value in _BY_SLUG


def id2label() -> dict[int, str]:
    return dict(enumerate(SLUGS))


def label2id() -> dict[str, int]:
    return {slug: i for i, slug in enumerate(SLUGS)}
