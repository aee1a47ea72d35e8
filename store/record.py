"""The one shape of everything kept in Redis: a :class:`Key` declares each key the product writes.

A record type (a dataclass with ``encode``/``decode``) owns its key as the class attribute ``KEY`` and builds
it with its ``key_for`` classmethod; a key that holds no record of its own (an index set, a counter, a zset)
is a module-level :class:`Key`. :mod:`store.keys` collects every one of them for the key table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Every key the product writes starts with this (RQ's own keys start with ``rq:``).
PREFIX = "newsbot:"


@dataclass(frozen=True, slots=True)
class Key:
    """One Redis key, or one family of keys told apart by a single part at their end.

    ``template`` is the key with its variable part, if any, as ``{name}`` at the end
    (``newsbot:recent:{user}``). ``ttl_s`` is the TTL every write sets, in seconds; None when no fixed one is
    set: the key never expires, unless ``lifetime`` names what sets its TTL per write. ``value`` (what the key
    holds) and ``lifetime`` (when it goes) are the key table's text.
    """

    template: str
    value: str
    lifetime: str
    ttl_s: int | None = None

    def __post_init__(self) -> None:
        head, brace, tail = self.template.partition("{")
        if not head.startswith(PREFIX) or "}" in head:
            raise ValueError(f"a key starts with {PREFIX!r}: {self.template!r}")
        if brace and (not tail.endswith("}") or "{" in tail or "}" in tail[:-1] or len(tail) < 2):
            raise ValueError(f"a key has at most one {{part}}, at its end: {self.template!r}")

    @property
    def prefix(self) -> str:
        """The key up to its variable part (the whole key when it has none)."""
        return self.template.partition("{")[0]

    @property
    def has_part(self) -> bool:
        return "{" in self.template

    @property
    def pattern(self) -> str:
        """The SCAN pattern that matches every key of the family."""
        return f"{self.prefix}*" if self.has_part else self.template

    def key_for(self, *part: str) -> str:
        """The key: the template with its part filled in (no part for a key without one)."""
        if len(part) != int(self.has_part):
            raise TypeError(f"{self.template!r} takes {int(self.has_part)} part(s), got {len(part)}")
        return self.prefix + part[0] if part else self.template

    def part_of(self, key: str) -> str:
        """The variable part of one of the family's keys."""
        return key.removeprefix(self.prefix)

    @property
    def shown(self) -> str:
        """The template as the key table shows it: ``newsbot:recent:<user>``."""
        return self.template.replace("{", "<").replace("}", ">")


def as_str(value: bytes | str | float | None) -> str:
    """What redis-py returned, as text: bytes decoded as UTF-8 (bad bytes replaced), None as ""."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def str_fields(raw: Mapping[Any, Any]) -> dict[str, str]:
    """A hash as redis-py returned it, as text."""
    return {as_str(k): as_str(v) for k, v in raw.items()}


def float_or_none(value: str) -> float | None:
    """A stored number; None for ""."""
    return float(value) if value else None


def fixed(value: float | None, digits: int) -> str:
    """A number as stored with ``digits`` decimals; "" for None."""
    return "" if value is None else f"{value:.{digits}f}"
