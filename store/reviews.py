"""Editors' decisions on other members' corrections: the review queue of the App Home.

A correction by a member who is not an editor waits for review before any training uses it. An editor accepts or
rejects it; the decision is kept beside the answer, for the label the member had chosen: a member who changes
their answer afterwards is reviewed again. Nothing is deleted: a rejected correction stays with its answer,
visible to editors (the App Home's review section, ``python -m training feedback export``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from redis import Redis

from store.record import Key


@dataclass(frozen=True, slots=True)
class Review:
    """An editor's decision on ``user``'s correction of record ``record_id`` to ``chosen``."""

    KEY: ClassVar[Key] = Key(
        "newsbot:feedback:review:{record_id}", "hash user → Review (an editor's decision)", "no TTL (as the answers)"
    )

    record_id: str
    user: str  # who made the correction
    chosen: str  # the label the decision is about
    accepted: bool
    editor: str  # who decided
    at: float

    @classmethod
    def key_for(cls, record_id: str) -> str:
        return cls.KEY.key_for(record_id)

    def encode(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def decode(cls, raw: bytes | str) -> Review:
        data = json.loads(raw)
        return cls(
            record_id=str(data["record_id"]),
            user=str(data["user"]),
            chosen=str(data["chosen"]),
            accepted=bool(data["accepted"]),
            editor=str(data.get("editor", "")),
            at=float(data.get("at", 0.0)),
        )


def put_review(connection: Redis, review: Review) -> None:
    """Store ``review``, replacing an earlier decision on the same member's correction."""
    connection.hset(Review.key_for(review.record_id), review.user, review.encode())


def reviews_of(connection: Redis, record_id: str) -> dict[str, Review]:
    """The decisions on ``record_id``'s corrections, by the member who made each."""
    raw: dict[Any, Any] = connection.hgetall(Review.key_for(record_id))
    decoded = (Review.decode(value) for value in raw.values())
    return {review.user: review for review in decoded}
