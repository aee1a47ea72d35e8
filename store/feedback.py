"""Users' feedback on classifications: storing and reading the answers, their tallies, and the feedback
service (:class:`FeedbackStore`) with its export as extra training examples.

The answers (:class:`~store.answers.FeedbackAnswer`) and the classification records they are about
(:mod:`store.classifications`; a record expires after RECORD_TTL_DAYS unless it gets feedback; answers never;
the compose file runs Redis with AOF so that they survive restarts): each user's latest answer per record (a
changed answer replaces the earlier one), the index of records with feedback, the tallies the App Home shows,
and the reply as Slack last showed it (so the counts on it can be updated from an ephemeral select later).

:meth:`FeedbackStore.export_dataset` writes every answered classification (corrections and confirmations) as a
dataset in the format training reads (``python -m training feedback export``).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from redis import Redis

from common.exceptions import ClassificationNotFoundError, UnknownCategoryError
from store import classifications, retraining
from store.answers import FeedbackAnswer
from store.classifications import REPLY_SNAPSHOT, ClassificationRecord
from store.record import Key, as_str
from telemetry import metrics

FEEDBACK_INDEX = Key("newsbot:feedback:index", "set of record ids", "no TTL")
FEEDBACK_CORRECT = Key("newsbot:stats:feedback:correct", "set of `<user>:<record id>`", "no TTL (as the answers)")
FEEDBACK_WRONG = Key("newsbot:stats:feedback:wrong", "zset `<user>:<record id>` → when answered", "no TTL")


def put_feedback(connection: Redis, answer: FeedbackAnswer) -> None:
    """Store ``answer``, replacing the user's earlier one on the same record, and index the record.

    The record and its reply snapshot are kept from now on (their RECORD_TTL_DAYS is removed): retraining
    reads the article from the record.
    """
    pipe = connection.pipeline(transaction=True)
    pipe.hset(FeedbackAnswer.key_for(answer.record_id), answer.user, answer.encode())
    pipe.sadd(FEEDBACK_INDEX.key_for(), answer.record_id)
    _count_feedback(pipe, answer)
    pipe.persist(ClassificationRecord.key_for(answer.record_id))
    pipe.persist(REPLY_SNAPSHOT.key_for(answer.record_id))
    pipe.execute()


def _count_feedback(pipe: Any, answer: FeedbackAnswer) -> None:
    """Within put_feedback's transaction: the answer counts as correct or wrong, never both (a change moves it)."""
    member = f"{answer.user}:{answer.record_id}"
    if answer.correct:
        pipe.sadd(FEEDBACK_CORRECT.key_for(), member)
        pipe.zrem(FEEDBACK_WRONG.key_for(), member)
    else:
        pipe.zadd(FEEDBACK_WRONG.key_for(), {member: answer.at})
        pipe.srem(FEEDBACK_CORRECT.key_for(), member)


def feedback_answers(connection: Redis, record_id: str) -> list[FeedbackAnswer]:
    """Every user's answer on ``record_id``, oldest first."""
    raw: dict[Any, Any] = connection.hgetall(FeedbackAnswer.key_for(record_id))
    return sorted((FeedbackAnswer.decode(v) for v in raw.values()), key=lambda a: a.at)


def feedback_answer(connection: Redis, record_id: str, user: str) -> FeedbackAnswer | None:
    raw: Any = connection.hget(FeedbackAnswer.key_for(record_id), user)
    return FeedbackAnswer.decode(raw) if raw else None


def feedback_record_ids(connection: Redis) -> list[str]:
    """The records that have feedback, sorted."""
    members: set[Any] = connection.smembers(FEEDBACK_INDEX.key_for())
    return sorted(as_str(m) for m in members)


@dataclass(frozen=True, slots=True)
class FeedbackTally:
    """Every user's latest answer counted once: correct, wrong, and wrong ones newer than the last training."""

    correct: int
    wrong: int
    waiting: int


def feedback_tally(connection: Redis) -> FeedbackTally:
    cutoff_raw: Any = connection.get(retraining.CORRECTIONS_CUTOFF.key_for())
    low = f"({as_str(cutoff_raw)}" if cutoff_raw else "-inf"
    with connection.pipeline() as pipe:
        pipe.scard(FEEDBACK_CORRECT.key_for())
        pipe.zcard(FEEDBACK_WRONG.key_for())
        pipe.zcount(FEEDBACK_WRONG.key_for(), low, "+inf")
        correct, wrong, waiting = (int(n) for n in pipe.execute())
    return FeedbackTally(correct=correct, wrong=wrong, waiting=waiting)


# --- the feedback service ---------------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    """What :meth:`FeedbackStore.export_dataset` wrote: corrections, confirmations, and records skipped."""

    corrections: int
    confirmations: int
    skipped: int
    path: Path | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "corrections": self.corrections,
            "confirmations": self.confirmations,
            "skipped": self.skipped,
            "path": None if self.path is None else str(self.path),
        }


def verdict(items: list[FeedbackAnswer]) -> str | None:
    """The label most people chose (the latest answer breaks a tie); None without answers."""
    if not items:
        return None
    votes = Counter(f.chosen for f in items)
    latest = {f.chosen: i for i, f in enumerate(items)}
    return max(votes, key=lambda label: (votes[label], latest[label]))


class FeedbackStore:
    """The feedback service: users' answers, the classification records they are about, and their export."""

    def __init__(self, connection: Redis) -> None:
        self.connection = connection

    def classification(self, record_id: str) -> ClassificationRecord:
        return classifications.get_classification(self.connection, record_id)

    def record(self, record_id: str, user: str, chosen: str) -> FeedbackCounts:
        """Store ``user``'s verdict (replacing an earlier one) and return the counts after it.

        ``chosen`` must be one of the labels of the model that made the classification (the record's):
        :class:`UnknownCategoryError` otherwise."""
        found = self.classification(record_id)
        if chosen not in found.label_set:
            raise UnknownCategoryError(chosen)
        answer = FeedbackAnswer(
            record_id=record_id,
            user=user,
            predicted=found.slug,
            chosen=chosen,
            model_version=found.model_version,
            at=time.time(),
        )
        put_feedback(self.connection, answer)
        metrics.FEEDBACK.labels(answer="correct" if answer.correct else "wrong").inc()
        return self.counts(record_id)

    def for_record(self, record_id: str) -> list[FeedbackAnswer]:
        return feedback_answers(self.connection, record_id)

    def of_user(self, record_id: str, user: str) -> FeedbackAnswer | None:
        return feedback_answer(self.connection, record_id, user)

    def counts(self, record_id: str) -> FeedbackCounts:
        items = self.for_record(record_id)
        corrections = Counter(f.chosen for f in items if not f.correct)
        return FeedbackCounts(confirmed=sum(1 for f in items if f.correct), corrections=dict(corrections))

    def record_ids(self) -> list[str]:
        return feedback_record_ids(self.connection)

    def export_corrections(self, path: Path) -> ExportSummary:
        """Write one ``{"title", "body", "slug"}`` JSON line per corrected classification to ``path``.

        The article is the classification record's, title and body apart, as training reads them
        (:func:`training.examples.load_extra_examples`). When several people answered, the category most of
        them chose wins (the latest answer breaks a tie); a classification that most people confirmed is no
        correction. A correction whose record is gone or has no text, or whose label is not one of the
        classifying model's, is skipped and counted, never fatal. The time of the export is noted: corrections
        answered later wait for the next training (the App Home counts them).
        """
        written = skipped = 0
        retraining.mark_corrections_exported(self.connection, time.time())
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            for record_id in self.record_ids():
                items = self.for_record(record_id)
                if not items:
                    continue
                chosen = verdict(items)
                if chosen is None or chosen == items[-1].predicted:
                    continue
                try:
                    found: ClassificationRecord | None = self.classification(record_id)
                except ClassificationNotFoundError:
                    found = None
                article = None if found is None else found.article
                if found is None or article is None or chosen not in found.label_set or not article.text.strip():
                    skipped += 1
                    continue
                row = {"title": article.title, "body": article.body, "slug": chosen}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                written += 1
        return ExportSummary(written=written, skipped=skipped, path=path)

    def export_dataset(self, out: IO[str], path: Path | None = None) -> DatasetSummary:
        """Write every classification people answered as one JSON line in the dataset format training reads
        (:mod:`training.dataset`): ``{"title", "text", "label"}`` — the article as it was classified and the
        label most people chose (a correction, or the prediction confirmed) — plus columns the loader ignores:
        ``feedback`` (``correction`` or ``confirmation``), ``predicted``, ``votes``, ``model_version`` and
        ``record_id``. A record that is gone or has no text is skipped and counted. Unlike
        :meth:`export_corrections`, this notes nothing: it is a copy for people to review and train on.
        """
        corrections = confirmations = skipped = 0
        for record_id in self.record_ids():
            items = self.for_record(record_id)
            chosen = verdict(items)
            if chosen is None:
                continue
            try:
                found = self.classification(record_id)
            except ClassificationNotFoundError:
                skipped += 1
                continue
            title, body = found.title.strip(), found.body.strip()
            text, title = (body, title) if body else (title, "")
            if not text:
                skipped += 1
                continue
            confirmed = chosen == found.slug
            row = {
                "title": title,
                "text": text,
                "label": chosen,
                "feedback": "confirmation" if confirmed else "correction",
                "predicted": found.slug,
                "votes": sum(1 for f in items if f.chosen == chosen),
                "model_version": found.model_version,
                "record_id": record_id,
            }
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            if confirmed:
                confirmations += 1
            else:
                corrections += 1
        return DatasetSummary(corrections=corrections, confirmations=confirmations, skipped=skipped, path=path)

    # -- the reply message, as Slack last showed it ------------------------------------------------
    def remember_message(self, record_id: str, message: dict[str, Any]) -> None:
        classifications.put_reply_snapshot(self.connection, record_id, message)

    def message(self, record_id: str) -> dict[str, Any] | None:
        return classifications.reply_snapshot(self.connection, record_id)
