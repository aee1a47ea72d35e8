"""The newsroom workflow's settings, each one Redis hash set by admins (no TTL): watched channels and routes
to desks."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from redis import Redis

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

    @classmethod
    def key_for(cls) -> str:
        return cls.KEY.key_for()

    def encode(self) -> str:
        return json.dumps({"channel": self.channel, "by": self.by, "at": self.at, "warned": self.warned})

    @classmethod
    def decode(cls, label: str, raw: bytes | str) -> Route:
        data = json.loads(as_str(raw))
        return cls(
            label=label,
            channel=str(data["channel"]),
            by=str(data.get("by", "")),
            at=float(data.get("at", 0.0)),
            warned=bool(data.get("warned", False)),
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
