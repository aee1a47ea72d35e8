"""Label sets: the categories a model sorts articles into, with their display names; livedoor's nine by default.

A :class:`LabelSet` is the ordered labels of one model (label id ``i`` is ``labels[i]``) and, optionally, a
Japanese and an English display name per label; a label without a display name is shown as itself. It is a
property of the training data and of the model trained on it: a model folder carries its ``id2label`` (BERT
``config.json``, ``linear.json``) and its display names (``labels.json``, :meth:`LabelSet.to_dict`).

:data:`LIVEDOOR` is the default set: the nine livedoor news categories in the fixed order every livedoor model
uses (id 0 is ``topic-news``). The names below it (:data:`CATEGORIES`, :data:`SLUGS`, :func:`category`,
:func:`is_slug`, …) are that set as the serving code has always used it.

No heavy imports here: the bot, the worker and the registry use this module.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from common.exceptions import LabelSetError, UnknownCategoryError

# The languages a display name may be given in.
LANGUAGES: tuple[str, ...] = ("ja", "en")
# A label is at most this many characters: it is a Slack option value and a metrics key.
MAX_LABEL_CHARS = 64


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


# An editor's answer that the article belongs to a desk the classifying model does not have (the App Home's list of
# unsure articles offers it): stored like a label, counted as "outside the model's labels" in the live accuracy,
# never trained on (the export skips labels the model does not have).
OUTSIDE_LABEL = "__outside__"


def normalise_label(label: str) -> str:
    """``label`` in the one spelling training keeps: Unicode NFKC (half-width kana and full-width letters become
    the usual forms, a decomposed ``ス`` + ``゙`` becomes ``ズ``), then without spaces at either end. Two labels
    that differ only in these ways look alike to every reader, so a dataset may not use both."""
    return unicodedata.normalize("NFKC", label).strip()


def check_label(label: object) -> str:
    """``label`` when it is usable as a label (a string of 1–64 characters, no control characters, not blank)."""
    if not isinstance(label, str) or not label.strip():
        raise LabelSetError(f"a label must be a non-empty string, not {label!r}")
    if label != label.strip() or len(label) > MAX_LABEL_CHARS or any(ch < " " or ch == "\x7f" for ch in label):
        raise LabelSetError(
            f"label {label!r}: at most {MAX_LABEL_CHARS} characters, no line breaks or control characters, "
            "no spaces at either end"
        )
    return label


@dataclass(frozen=True, eq=True)
class LabelSet:
    """Ordered labels (label id ``i`` is ``labels[i]``) and optional display names ``{label: {ja, en}}``.

    Iterating yields the labels in id order; ``len`` is their count; ``label in labels`` tests membership.
    Two sets are equal when their labels (in order) and display names are; :meth:`same_labels` ignores
    order and names.
    """

    labels: tuple[str, ...]
    names: Mapping[str, Mapping[str, str]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        labels = tuple(check_label(label) for label in self.labels)
        if len(set(labels)) != len(labels):
            repeated = sorted({label for label in labels if labels.count(label) > 1})
            raise LabelSetError(f"labels must be unique; repeated: {repeated}")
        if len(labels) < 2:
            raise LabelSetError(f"a label set needs at least two labels, found {list(labels)}")
        names: dict[str, dict[str, str]] = {}
        for label, given in dict(self.names).items():
            if label not in labels:
                raise LabelSetError(f"a display name is given for {label!r}, which is not one of the labels")
            if not isinstance(given, Mapping):
                raise LabelSetError(f"display names of {label!r} must be a mapping like {{ja: …, en: …}}")
            unknown = sorted(set(given) - set(LANGUAGES))
            if unknown:
                raise LabelSetError(f"display names of {label!r}: unknown language(s) {unknown} (use ja, en)")
            kept = {lang: str(given[lang]).strip() for lang in LANGUAGES if str(given.get(lang) or "").strip()}
            if kept:
                names[label] = kept
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "names", names)

    # -- as a sequence -----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[str]:
        return iter(self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, label: object) -> bool:
        return label in self.labels

    def index(self, label: str) -> int:
        """The label id of ``label``; raises :class:`UnknownCategoryError` for a label not in the set."""
        try:
            return self.labels.index(label)
        except ValueError:
            raise UnknownCategoryError(label) from None

    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    def same_labels(self, other: Iterable[str]) -> bool:
        """Whether ``other`` holds the same labels, in any order (the names are not compared)."""
        return set(self.labels) == set(other)

    # -- display names -----------------------------------------------------------------------------

    def name(self, label: str, language: str) -> str:
        """The display name of ``label`` in ``language`` (``ja`` or ``en``), else the label itself."""
        self.index(label)
        return self.names.get(label, {}).get(language) or label

    def ja(self, label: str) -> str:
        return self.name(label, "ja")

    def en(self, label: str) -> str:
        return self.name(label, "en")

    def display(self, label: str) -> str:
        """What users are shown: ``スポーツ / Sports Watch``; one name when only one is given or they are the
        same; the label itself without display names."""
        ja, en = self.ja(label), self.en(label)
        return ja if ja == en else f"{ja} / {en}"

    def with_names(self, names: Mapping[str, Mapping[str, str]]) -> LabelSet:
        """The same labels with ``names`` over the display names already given."""
        merged = {label: dict(given) for label, given in self.names.items()}
        for label, given in names.items():
            merged.setdefault(label, {}).update(given)
        return LabelSet(self.labels, merged)

    # -- plain data (JSON, a classification record) ------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """``{"labels": [...], "names": {label: {"ja": …, "en": …}}}``: plain lists and dicts."""
        return {"labels": list(self.labels), "names": {label: dict(self.names[label]) for label in self.names}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelSet:
        """The set :meth:`to_dict` gave; raises :class:`LabelSetError` for anything else."""
        if not isinstance(data, Mapping) or not isinstance(data.get("labels"), list):
            raise LabelSetError('a label set is {"labels": [...], "names": {...}}')
        names = data.get("names") or {}
        if not isinstance(names, Mapping):
            raise LabelSetError('"names" of a label set must be a mapping {label: {ja, en}}')
        return cls(tuple(data["labels"]), names)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)

    @classmethod
    def from_json(cls, text: str) -> LabelSet:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise LabelSetError(f"not JSON: {exc}") from None
        return cls.from_dict(data)


# -- livedoor: the default set ---------------------------------------------------------------------

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

LIVEDOOR = LabelSet(SLUGS, {c.slug: {"ja": c.ja, "en": c.en} for c in CATEGORIES})


def category(slug: str) -> Category:
    """The livedoor category for ``slug``; raises :class:`UnknownCategoryError` for anything else."""
    try:
        return _BY_SLUG[slug]
    except KeyError:
        raise UnknownCategoryError(slug) from None


def is_slug(value: str) -> bool:
    """Whether ``value`` is one of the nine livedoor slugs."""
    return value in _BY_SLUG


def id2label() -> dict[int, str]:
    """The livedoor set's label ids (see :meth:`LabelSet.id2label` for any set)."""
    return LIVEDOOR.id2label()


def label2id() -> dict[str, int]:
    """The livedoor set's label ids by slug (see :meth:`LabelSet.label2id` for any set)."""
    return LIVEDOOR.label2id()
