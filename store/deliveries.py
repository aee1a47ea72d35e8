"""At most one job per Slack delivery, one reply per job: delivery claims and reply marks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from redis import Redis

from store.record import Key, as_str

# How long a Slack delivery id is remembered. Slack retries an event for about 5 minutes; keep it a day.
DELIVERY_TTL_S = 24 * 3600
# A job's reply mark: a retry (of a later step) within this long never posts the reply twice.
REPLY_MARK_TTL_S = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class DeliveryClaim:
    """A Slack delivery (event_id, trigger id, …) that has been enqueued; Slack's retries of it are refused."""

    KEY: ClassVar[Key] = Key(
        "newsbot:delivery:{delivery_key}", '"1" (DeliveryClaim)', "DELIVERY_TTL_S", ttl_s=DELIVERY_TTL_S
    )

    delivery_key: str

    @classmethod
    def key_for(cls, delivery_key: str) -> str:
        return cls.KEY.key_for(delivery_key)

    def encode(self) -> str:
        return "1"


def claim_delivery(connection: Redis, delivery_key: str) -> bool:
    """True the first time ``delivery_key`` is seen (atomic SET NX with DELIVERY_TTL_S)."""
    claim = DeliveryClaim(delivery_key)
    return bool(
        connection.set(DeliveryClaim.key_for(delivery_key), claim.encode(), nx=True, ex=DeliveryClaim.KEY.ttl_s)
    )


def release_delivery(connection: Redis, delivery_key: str) -> None:
    """Forget a claim whose job could not be enqueued, so that Slack's retry can enqueue it."""
    connection.delete(DeliveryClaim.key_for(delivery_key))


@dataclass(frozen=True, slots=True)
class ReplyMark:
    """A job whose reply was posted, with the reply's ts ("" through response_url)."""

    KEY: ClassVar[Key] = Key("newsbot:replied:{job_id}", "reply ts (ReplyMark)", "REPLY_MARK_TTL_S", REPLY_MARK_TTL_S)

    job_id: str
    ts: str

    @classmethod
    def key_for(cls, job_id: str) -> str:
        return cls.KEY.key_for(job_id)

    def encode(self) -> str:
        return self.ts

    @classmethod
    def decode(cls, job_id: str, raw: bytes | str) -> ReplyMark:
        return cls(job_id=job_id, ts=as_str(raw))


def reply_mark(connection: Redis, job_id: str) -> ReplyMark | None:
    raw: Any = connection.get(ReplyMark.key_for(job_id))
    return None if raw is None else ReplyMark.decode(job_id, raw)


def put_reply_mark(connection: Redis, mark: ReplyMark) -> None:
    connection.set(ReplyMark.key_for(mark.job_id), mark.encode(), ex=ReplyMark.KEY.ttl_s)
