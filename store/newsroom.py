"""The newsroom workflow's settings, each one Redis hash set by admins (no TTL): watched channels and routes
to desks; and what Slack last said about a channel's audience (:class:`ChannelFacts`, kept a minute)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from redis import Redis

from common.audience import Audience
from store.record import Key, as_str

R = TypeVar("R")


class _Settings(Generic[R]):
    """An admin's settings kept as one Redis hash (no TTL): field → JSON record, listed in field order."""

    def __init__(self, key: Key, decode: Callable[[str, bytes | str], R]) -> None:
        self.key = key.key_for()
        self.decode = decode

    def put(self, connection: Redis, field_name: str, encoded: str) -> None:
        connection.hset(self.key, field_name, encoded)

    def remove(self, connection: Redis, field_name: str) -> bool:
        return bool(connection.hdel(self.key, field_name))

    def get(self, connection: Redis, field_name: str) -> R | None:
        raw: Any = connection.hget(self.key, field_name)
        return None if raw is None else self.decode(field_name, raw)

    def all(self, connection: Redis) -> list[R]:
        raw: dict[Any, Any] = connection.hgetall(self.key)
        return [self.decode(name, raw_value) for name, raw_value in sorted((as_str(k), v) for k, v in raw.items())]


@dataclass(frozen=True, slots=True)
class Watch:
    """A channel whose new articles are classified without being asked, turned on by an admin."""

    KEY: ClassVar[Key] = Key("newsbot:watch", "hash channel → Watch", "no TTL (an admin's setting)")

    channel: str
    by: str
    at: float

    @classmethod
    def key_for(cls) -> str:
        return cls.KEY.key_for()

    def encode(self) -> str:
        return json.dumps({"by": self.by, "at": self.at})

    @classmethod
    def decode(cls, channel: str, raw: bytes | str) -> Watch:
        data = json.loads(as_str(raw))
        return cls(channel=channel, by=str(data.get("by", "")), at=float(data.get("at", 0.0)))


_WATCHES = _Settings(Watch.KEY, Watch.decode)


def put_watch(connection: Redis, watch: Watch) -> None:
    _WATCHES.put(connection, watch.channel, watch.encode())


def remove_watch(connection: Redis, channel: str) -> bool:
    """Stop watching ``channel``; False when it was not watched."""
    return _WATCHES.remove(connection, channel)


def watch_of(connection: Redis, channel: str) -> Watch | None:
    return _WATCHES.get(connection, channel)


def watches(connection: Redis) -> list[Watch]:
    """Every watched channel, in channel-id order."""
    return _WATCHES.all(connection)


@dataclass(frozen=True, slots=True)
class Route:
    """Confident articles of ``label`` are cross-posted to ``channel`` (a desk), as set by admin ``by``."""

    KEY: ClassVar[Key] = Key("newsbot:routes", "hash label → Route", "no TTL (an admin's setting)")

    label: str
    channel: str
    by: str
    at: float
    warned: bool = False  # the admin was told once that the bot is not in the desk channel
    # The desk's audience (common.audience key) an admin accepted with ``allow-wider``: articles from narrower
    # channels are cross-posted as long as the desk is no wider than that; "" when the route was not opted in.
    allow_wider: str = ""
    # Why the route is paused ("archived", "removed": the desk was archived, the bot removed from it); "" when
    # it is not. A paused route cross-posts nothing until an admin sets it again.
    paused: str = ""
    # The reasons (``<source audience>><desk audience>``) its admin was already told a post was held for.
    held_told: tuple[str, ...] = ()

    @classmethod
    def key_for(cls) -> str:
        return cls.KEY.key_for()

    def encode(self) -> str:
        return json.dumps(
            {
                "channel": self.channel,
                "by": self.by,
                "at": self.at,
                "warned": self.warned,
                "allow_wider": self.allow_wider,
                "paused": self.paused,
                "held_told": list(self.held_told),
            }
        )

    @classmethod
    def decode(cls, label: str, raw: bytes | str) -> Route:
        data = json.loads(as_str(raw))
        return cls(
            label=label,
            channel=str(data["channel"]),
            by=str(data.get("by", "")),
            at=float(data.get("at", 0.0)),
            warned=bool(data.get("warned", False)),
            allow_wider=str(data.get("allow_wider") or ""),
            paused=str(data.get("paused") or ""),
            held_told=tuple(str(r) for r in data.get("held_told") or ()),
        )


_ROUTES = _Settings(Route.KEY, Route.decode)


def put_route(connection: Redis, route: Route) -> None:
    _ROUTES.put(connection, route.label, route.encode())


def remove_route(connection: Redis, label: str) -> bool:
    """Clear the route of ``label``; False when it had none."""
    return _ROUTES.remove(connection, label)


def route_of(connection: Redis, label: str) -> Route | None:
    return _ROUTES.get(connection, label)


def routes(connection: Redis) -> list[Route]:
    """Every route, in label order."""
    return _ROUTES.all(connection)


def routes_to(connection: Redis, channel: str) -> list[Route]:
    """The routes whose desk is ``channel``, in label order."""
    return [route for route in routes(connection) if route.channel == channel]


# How long what Slack said about a channel's audience is trusted: a post re-asks conversations.info after this,
# and the lifecycle events (shared, unshared, made private or public) forget it at once.
CHANNEL_FACTS_TTL_S = 60


@dataclass(frozen=True, slots=True)
class ChannelFacts:
    """What ``conversations.info`` said about a channel, shared by every worker and the bot for a minute."""

    KEY: ClassVar[Key] = Key(
        "newsbot:channel:{channel}",
        "JSON, ChannelFacts: private, externally shared, archived, bot a member",
        "CHANNEL_FACTS_TTL_S",
        ttl_s=CHANNEL_FACTS_TTL_S,
    )

    channel: str
    private: bool
    external: bool
    archived: bool = False
    member: bool = True

    @classmethod
    def key_for(cls, channel: str) -> str:
        return cls.KEY.key_for(channel)

    @classmethod
    def of(cls, channel: str, info: Mapping[str, Any]) -> ChannelFacts:
        """From conversations.info's ``channel`` object."""
        audience = Audience.of(info)
        return cls(
            channel=channel,
            private=audience.private,
            external=audience.external,
            archived=bool(info.get("is_archived")),
            member=bool(info.get("is_member", True)),
        )

    @property
    def audience(self) -> Audience:
        return Audience(private=self.private, external=self.external)

    def encode(self) -> str:
        return json.dumps(
            {"private": self.private, "external": self.external, "archived": self.archived, "member": self.member}
        )

    @classmethod
    def decode(cls, channel: str, raw: bytes | str) -> ChannelFacts:
        data = json.loads(as_str(raw))
        return cls(
            channel=channel,
            private=bool(data.get("private")),
            external=bool(data.get("external")),
            archived=bool(data.get("archived")),
            member=bool(data.get("member", True)),
        )


def cached_facts(connection: Redis, channel: str) -> ChannelFacts | None:
    raw: Any = connection.get(ChannelFacts.key_for(channel))
    return None if raw is None else ChannelFacts.decode(channel, raw)


def put_facts(connection: Redis, facts: ChannelFacts) -> None:
    connection.set(ChannelFacts.key_for(facts.channel), facts.encode(), ex=CHANNEL_FACTS_TTL_S)


def forget_facts(connection: Redis, channel: str) -> None:
    """Drop what was kept about ``channel`` (its audience changed): the next post asks Slack again."""
    connection.delete(ChannelFacts.key_for(channel))


def channel_facts(
    connection: Redis, channel: str, info: Callable[[str], Mapping[str, Any]], *, fresh: bool = False
) -> ChannelFacts:
    """``channel``'s facts: as kept for up to CHANNEL_FACTS_TTL_S, else (or with ``fresh``) from ``info``
    (conversations.info's ``channel`` object; what it raises, e.g. slack_sdk's SlackApiError, goes through)."""
    if not fresh:
        kept = cached_facts(connection, channel)
        if kept is not None:
            return kept
    facts = ChannelFacts.of(channel, info(channel))
    put_facts(connection, facts)
    return facts
