"""Parsing the newsroom subcommands of ``/classify-news`` (their answers are :mod:`ui.newsroom`'s).

``/classify-news watch`` · ``unwatch`` · ``watching`` (in the channel concerned), ``route <label> #channel
[allow-wider]`` · ``route list`` · ``route clear <label>``. Anything else is article text to classify: a
subcommand is only a text that *is* one of these (a keyword alone, or ``route`` with at most two words after it,
or three ending in ``allow-wider``), so an article that
happens to start with "route" is still classified. Pure functions (no Slack), but for :func:`route_labels`,
which reads the labels the workers publish in Redis.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from redis import Redis

from common.exceptions import RouteRefusedError
from common.labels import SLUGS
from store.serving import serving_states
from ui.commands import newsroom_usage
from ui.newsroom import NO_WATCH_IN_DM, not_a_channel, unknown_label

# A channel as Slack escapes it in a command (``<#C123|name>``, ``<#C123>``, ``<#C123|>``), or its bare id.
_CHANNEL_MARKUP = re.compile(r"<#([CG][A-Z0-9]{2,})(?:\|[^>]*)?>")
_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,}")
# The word that opts a route in to desks wider than the articles' channels (``route <label> #desk allow-wider``).
ALLOW_WIDER = "allow-wider"


@dataclass(frozen=True, slots=True)
class WatchCommand:
    """Turn watching of the command's channel on (``on``) or off; or list the watched channels."""

    action: Literal["on", "off", "list"]

    @property
    def name(self) -> str:
        """The subcommand's name in ``ui.commands`` (the key of the bot's dispatch table)."""
        return {"on": "watch", "off": "unwatch", "list": "watching"}[self.action]


@dataclass(frozen=True, slots=True)
class RouteCommand:
    """Set (``label`` → ``desk``), clear (``label``) or list the routes to desks."""

    action: Literal["set", "clear", "list"]
    label: str = ""
    desk: str = ""
    # ``allow-wider``: cross-post articles of channels with a narrower audience (private ones) to this desk too.
    allow_wider: bool = False

    @property
    def name(self) -> str:
        """The subcommand's name in ``ui.commands`` (the key of the bot's dispatch table)."""
        return f"route {self.action}"


NewsroomCommand = WatchCommand | RouteCommand


def route_labels(connection: Redis) -> tuple[str, ...]:
    """The labels a route may name: those of the model the workers serve (as they publish it in their serving
    state, :class:`store.serving.ServingState`: the model most of them serve, the newest on a tie); the livedoor
    slugs while no worker has published one."""
    served = [s for s in serving_states(connection) if s.version and s.labels]
    if not served:
        return SLUGS
    votes: dict[str, int] = {}
    for serving in served:
        votes[serving.version] = votes.get(serving.version, 0) + 1
    version = max(votes, key=lambda v: (votes[v], v))
    return next(s.labels for s in served if s.version == version)


def is_newsroom(text: str) -> bool:
    """Whether ``text`` has the shape of a newsroom subcommand (a keyword alone, or ``route`` with at most two words
    after it), before any of it is read: the bot checks the user is an admin first, then parses it."""
    return _has_shape(text.split())


def _has_shape(words: Sequence[str]) -> bool:
    """The one definition of the subcommands' shape, for :func:`is_newsroom` and :func:`parse_newsroom`."""
    if len(words) == 1 and words[0] in ("watch", "unwatch", "watching"):
        return True
    if not words or words[0] != "route":
        return False
    return len(words) <= 3 or (len(words) == 4 and words[3] == ALLOW_WIDER)


def parse_newsroom(text: str, labels: Sequence[str] | Callable[[], Sequence[str]] = SLUGS) -> NewsroomCommand | None:
    """The subcommand ``text`` is, or None when it is article text; :class:`RouteRefusedError` when malformed.

    ``labels`` (or a function giving them, called only for ``route <label> #channel``) are those a route may
    name."""
    words = text.split()
    if not words:
        return None
    head = words[0]
    if len(words) == 1 and head in ("watch", "unwatch", "watching"):
        return WatchCommand({"watch": "on", "unwatch": "off", "watching": "list"}[head])  # type: ignore[arg-type]
    if head != "route" or not _has_shape(words):
        return None
    rest = words[1:]
    if len(rest) == 3:
        known = labels() if callable(labels) else labels
        return RouteCommand("set", label=_label(rest[0], known), desk=channel_id(rest[1]), allow_wider=True)
    if rest == ["list"]:
        return RouteCommand("list")
    if len(rest) == 2 and rest[0] == "clear":
        return RouteCommand("clear", label=rest[1])  # a route of a label the model no longer has can go too
    if len(rest) == 2:
        known = labels() if callable(labels) else labels
        return RouteCommand("set", label=_label(rest[0], known), desk=channel_id(rest[1]))
    raise RouteRefusedError("コマンドの形が正しくありません。", "That command is not complete.\n" + newsroom_usage())


def _label(value: str, labels: Sequence[str]) -> str:
    if value in labels:
        return value
    raise RouteRefusedError(*unknown_label(value, labels))


def channel_id(value: str) -> str:
    """The channel id in ``<#C123|name>`` (a channel picked from Slack's list) or a bare ``C123``."""
    markup = _CHANNEL_MARKUP.fullmatch(value)
    if markup:
        return markup.group(1)
    if _CHANNEL_ID.fullmatch(value):
        return value
    raise RouteRefusedError(*not_a_channel(value))


def no_watch_in_dm() -> RouteRefusedError:
    return RouteRefusedError(*NO_WATCH_IN_DM)
