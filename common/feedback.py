"""Users' feedback on classifications, kept durably in Redis, and exported as extra training examples.

Layout (no TTLs; the compose file runs Redis with AOF so that it survives restarts):

- ``newsbot:feedback:<record id>``: hash, one field per Slack user, the user's latest :class:`Feedback` as JSON
  (so a user changing their answer replaces the earlier one);
- ``newsbot:feedback:index``: set of record ids that have feedback;
- ``newsbot:feedback:message:<record id>``: the classification reply as Slack last showed it (channel, ts and
  blocks), so the counts on it can be updated from an ephemeral select later.

The classification itself (text, predicted slug, model version) is what the worker stored at
:func:`common.jobs.classification_key`.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from redis import Redis

from common.exceptions import ClassificationNotFoundError
from common.jobs import classification_key
from common.labels import category, is_slug

INDEX_KEY = "newsbot:feedback:index"


def feedback_key(record_id: str) -> str:
    return f"newsbot:feedback:{record_id}"


def message_key(record_id: str) -> str:
    return f"newsbot:feedback:message:{record_id}"


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class Classification:
    """What the worker stored about one classified article."""

    record_id: str
    text: str
    title: str
    url: str
    slug: str
    model_version: str
    channel: str
    ts: str

    @property
    def article_text(self) -> str:
        """Title and body as training reads them: the title on the first line when there is one."""
        return f"{self.title}\n{self.text}" if self.title else self.text


@dataclass(frozen=True, slots=True)
class Feedback:
    """One user's verdict on one classification."""

    record_id: str
    user: str
    predicted: str
    chosen: str
    text: str
    model_version: str
    at: float

    @property
    def correct(self) -> bool:
        return self.chosen == self.predicted

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Feedback:
        data = json.loads(raw)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class FeedbackCounts:
    """How many people confirmed the prediction, and which categories the others chose."""

    confirmed: int
    corrections: dict[str, int]

    @property
    def corrected(self) -> int:
        return sum(self.corrections.values())

    @property
    def total(self) -> int:
        return self.confirmed + self.corrected


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What :meth:`FeedbackStore.export_corrections` wrote: examples used and examples skipped (with why)."""

    written: int
    skipped: int
    path: Path


class FeedbackStore:
    def __init__(self, connection: Redis) -> None:
        self.connection = connection

    def classification(self, record_id: str) -> Classification:
        raw: dict[Any, Any] = self.connection.hgetall(classification_key(record_id))
        if not raw:
            raise ClassificationNotFoundError(record_id)
        fields = {_text(k): _text(v) for k, v in raw.items()}
        return Classification(
            record_id=record_id,
            text=fields.get("text", ""),
            title=fields.get("title", ""),
            url=fields.get("url", ""),
            slug=fields.get("slug", ""),
            model_version=fields.get("model_version", ""),
            channel=fields.get("channel", ""),
            ts=fields.get("ts", ""),
        )

    def record(self, record_id: str, user: str, chosen: str) -> FeedbackCounts:
        """Store ``user``'s verdict (replacing an earlier one) and return the counts after it."""
        category(chosen)  # UnknownCategoryError for anything but the nine slugs
        found = self.classification(record_id)
        feedback = Feedback(
            record_id=record_id,
            user=user,
            predicted=found.slug,
            chosen=chosen,
            text=found.article_text,
            model_version=found.model_version,
            at=time.time(),
        )
        pipe = self.connection.pipeline(transaction=True)
        pipe.hset(feedback_key(record_id), user, feedback.to_json())
        pipe.sadd(INDEX_KEY, record_id)
        pipe.execute()
        return self.counts(record_id)

    def for_record(self, record_id: str) -> list[Feedback]:
        raw: dict[Any, Any] = self.connection.hgetall(feedback_key(record_id))
        return sorted((Feedback.from_json(v) for v in raw.values()), key=lambda f: f.at)

    def of_user(self, record_id: str, user: str) -> Feedback | None:
        raw = self.connection.hget(feedback_key(record_id), user)
        return Feedback.from_json(raw) if raw else None

    def counts(self, record_id: str) -> FeedbackCounts:
        items = self.for_record(record_id)
        corrections = Counter(f.chosen for f in items if not f.correct)
        return FeedbackCounts(confirmed=sum(1 for f in items if f.correct), corrections=dict(corrections))

    def record_ids(self) -> list[str]:
        members: set[Any] = self.connection.smembers(INDEX_KEY)
        return sorted(_text(m) for m in members)

    def export_corrections(self, path: Path) -> ExportSummary:
        """Write one ``{"text", "slug"}`` JSON line per corrected classification to ``path``.

        When several people answered, the category most of them chose wins (the latest answer breaks a tie);
        a classification that most people confirmed is no correction. Feedback with no text or a slug that is
        not one of the nine is skipped and counted, never fatal.
        """
        written = skipped = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            for record_id in self.record_ids():
                items = self.for_record(record_id)
                if not items:
                    continue
                votes = Counter(f.chosen for f in items)
                latest = {f.chosen: i for i, f in enumerate(items)}
                chosen = max(votes, key=lambda slug: (votes[slug], latest[slug]))
                if chosen == items[-1].predicted:
                    continue
                text = items[-1].text.strip()
                if not is_slug(chosen) or not text:
                    skipped += 1
                    continue
                out.write(json.dumps({"text": text, "slug": chosen}, ensure_ascii=False) + "\n")
                written += 1
        return ExportSummary(written=written, skipped=skipped, path=path)

    # -- the reply message, as Slack last showed it ------------------------------------------------
    def remember_message(self, record_id: str, message: dict[str, Any]) -> None:
        self.connection.set(message_key(record_id), json.dumps(message, ensure_ascii=False))

    def message(self, record_id: str) -> dict[str, Any] | None:
        raw = self.connection.get(message_key(record_id))
        if not raw:
            return None
        data: dict[str, Any] = json.loads(raw)
        return data
