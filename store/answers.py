"""Users' feedback answers: each user's latest verdict on a classification.

The record alone, below :mod:`store.classifications` (a classification record with answers is kept for good)
and :mod:`store.feedback` (which stores and reads the answers).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import ClassVar

from store.record import Key


@dataclass(frozen=True, slots=True)
class FeedbackAnswer:
    """One user's latest verdict on one classification (the article itself is in its ClassificationRecord)."""

    KEY: ClassVar[Key] = Key("newsbot:feedback:{record_id}", "hash user → FeedbackAnswer", "no TTL (feeds retraining)")

    record_id: str
    user: str
    predicted: str
    chosen: str
    model_version: str
    at: float

    @property
    def correct(self) -> bool:
        return self.chosen == self.predicted

    @classmethod
    def key_for(cls, record_id: str) -> str:
        return cls.KEY.key_for(record_id)

    def encode(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def decode(cls, raw: bytes | str) -> FeedbackAnswer:
        data = json.loads(raw)  # answers of earlier releases also carry `text`: ignored
        return cls(
            record_id=str(data["record_id"]),
            user=str(data["user"]),
            predicted=str(data["predicted"]),
            chosen=str(data["chosen"]),
            model_version=str(data.get("model_version", "")),
            at=float(data.get("at", 0.0)),
        )


def verdict(items: Sequence[FeedbackAnswer]) -> str | None:
    """The label most people chose (the latest answer breaks a tie); None without answers."""
    if not items:
        return None
    votes = Counter(f.chosen for f in items)
    latest = {f.chosen: i for i, f in enumerate(items)}
    return max(votes, key=lambda label: (votes[label], latest[label]))
