"""Who can read a channel, as far as the newsroom workflow cares: its audience.

A cross-post to a desk must never reach more people than the article's own channel does. Two facts of Slack's
``conversations.info`` decide it: ``is_private`` (only invited members read it) and ``is_ext_shared`` (shared with
another organisation through Slack Connect, or about to be: ``is_pending_ext_shared``). The audiences, from the
narrowest: ``private`` < ``internal`` (public in this workspace, not shared) < ``shared`` (externally shared).
A private channel that is externally shared (``private-shared``) is wider than a private one and incomparable with
an internal one: an internal desk would show its articles to the whole workspace, so it is held there too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

AudienceKey = Literal["private", "internal", "shared", "private-shared"]


@dataclass(frozen=True, slots=True)
class Audience:
    """A channel's audience: whether it is private, whether it is shared outside the organisation."""

    private: bool
    external: bool

    @classmethod
    def of(cls, info: Mapping[str, Any]) -> Audience:
        """The audience of a channel as ``conversations.info`` describes it (its ``channel`` object)."""
        private = bool(info.get("is_private") or info.get("is_group"))
        external = bool(info.get("is_ext_shared") or info.get("is_pending_ext_shared"))
        return cls(private=private, external=external)

    @classmethod
    def from_key(cls, key: str) -> Audience:
        return cls(private=key.startswith("private"), external=key.endswith("shared"))

    @property
    def key(self) -> AudienceKey:
        if self.private:
            return "private-shared" if self.external else "private"
        return "shared" if self.external else "internal"

    def wider_than(self, other: Audience) -> bool:
        """Whether someone who reads this channel may not read ``other``: it reaches another organisation that
        ``other`` does not, or it is open to the workspace while ``other`` is private."""
        return (self.external and not other.external) or (not self.private and other.private)
