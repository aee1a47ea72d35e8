"""Per-member rate limits: how many requests a member made in the current window.

A fixed window per member: the first counted request of a member starts a window of
:data:`MEMBER_RATE_WINDOW_S` (the key is created with that TTL); every request in it increments the count; the
window ends when the key expires. The bot refuses a request whose count is over the limit
(MEMBER_RATE_PER_MINUTE), and tells the member only on the first refusal of a window (count = limit + 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from redis import Redis

from store.record import Key, as_str

# One window of the member rate limit: MEMBER_RATE_PER_MINUTE requests per this many seconds.
MEMBER_RATE_WINDOW_S = 60


@dataclass(frozen=True, slots=True)
class MemberRate:
    """The requests ``user`` made in the current window (a counter; its TTL is what is left of the window)."""

    KEY: ClassVar[Key] = Key(
        "newsbot:rate:{user}",
        "requests in the current window (MemberRate)",
        "MEMBER_RATE_WINDOW_S from the window's first request",
        ttl_s=MEMBER_RATE_WINDOW_S,
    )

    user: str
    count: int

    @classmethod
    def key_for(cls, user: str) -> str:
        return cls.KEY.key_for(user)

    def encode(self) -> str:
        return str(self.count)

    @classmethod
    def decode(cls, user: str, raw: bytes | str) -> MemberRate:
        return cls(user=user, count=int(as_str(raw) or 0))


def count_request(connection: Redis, user: str) -> MemberRate:
    """Count one request of ``user`` in the current window (starting one when none is open); the count after."""
    key = MemberRate.key_for(user)
    pipe = connection.pipeline(transaction=True)
    pipe.set(key, MemberRate(user, 0).encode(), nx=True, ex=MemberRate.KEY.ttl_s)  # opens a window
    pipe.incr(key)  # keeps the key's TTL
    _opened, count = pipe.execute()
    return MemberRate(user=user, count=int(count))


def member_rate(connection: Redis, user: str) -> MemberRate | None:
    """The current window's count of ``user``; None when no window is open."""
    raw: Any = connection.get(MemberRate.key_for(user))
    return None if raw is None else MemberRate.decode(user, raw)
