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
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from redis import Redis

from common.exceptions import ClassificationNotFoundError, UnknownCategoryError
from common.labels import OUTSIDE_LABEL, LabelSet
from store import classifications, live, retraining, reviews
from store.answers import FeedbackAnswer, verdict
from store.classifications import REPLY_SNAPSHOT, ClassificationRecord
from store.record import Key, as_str
from store.reviews import Review
from store.trust import (
    HELD_OUT,
    SKIPPED,
    USED,
    MemberTally,
    TrustedRecord,
    TrustPolicy,
    in_holdout,
    recent_count,
    sort_by_trust,
)
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
    """What :meth:`FeedbackStore.export_corrections` wrote: examples used and examples skipped (with why), the
    editor-confirmed records held out, and what became of each member's corrections."""

    written: int
    skipped: int
    path: Path
    held_out: int = 0
    holdout_path: Path | None = None
    members: dict[str, MemberTally] = field(default_factory=dict)
    recent: int = 0  # the newest editor-labelled records, held out (recent_path)
    recent_path: Path | None = None


@dataclass(frozen=True, slots=True)
class PendingCorrection:
    """A member's correction as an editor reviews it: the answer, the article's title and the model's labels."""

    answer: FeedbackAnswer
    title: str
    labels: LabelSet


@dataclass(frozen=True, slots=True)
class UnsureArticle:
    """One of today's unsure articles as the editors' review list shows it: the model's answer and its labels."""

    record_id: str
    title: str
    predicted: str
    labels: LabelSet
    at: float  # when it was classified


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


class FeedbackStore:
    """The feedback service: users' answers, the classification records they are about, and their export."""

    def __init__(self, connection: Redis, timezone: str = "UTC") -> None:
        self.connection = connection
        self.timezone = timezone  # the newsroom's (NEWSROOM_TIMEZONE): the day of the live counters

    def classification(self, record_id: str) -> ClassificationRecord:
        return classifications.get_classification(self.connection, record_id)

    def record(self, record_id: str, user: str, chosen: str, *, editor: bool = False) -> FeedbackCounts:
        """Store ``user``'s verdict (replacing an earlier one) and return the counts after it; an ``editor``'s
        verdict also counts in the classifying version's live accuracy (:mod:`store.live`).

        ``chosen`` must be one of the labels of the model that made the classification (the record's), or for an
        editor :data:`~common.labels.OUTSIDE_LABEL` (a desk the model does not have): :class:`UnknownCategoryError`
        otherwise."""
        found = self.classification(record_id)
        if chosen not in found.label_set and not (editor and chosen == OUTSIDE_LABEL):
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
        day = live.classified_day(found.created_at, ZoneInfo(self.timezone))
        if editor and day is not None and found.model_version:
            outcome = live.outcome_of(found.slug, chosen, found.label_set.labels)
            live.count_labelled(self.connection, found.model_version, day, record_id, outcome)
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

    def export_corrections(
        self, path: Path, policy: TrustPolicy, holdout_path: Path | None = None, recent_path: Path | None = None
    ) -> ExportSummary:
        """Write one ``{"title", "body", "slug"}`` JSON line per corrected classification to ``path``, using the
        answers by trust (:mod:`store.trust`): editors' answers and accepted corrections count, anyone else's
        correction waits for review, and at most ``policy.daily_cap`` per member per day count.

        The article is the classification record's, title and body apart, as training reads them
        (:func:`training.examples.load_extra_examples`). The label is the verdict of the answers that count (the
        category most chose; the latest breaks a tie); a classification they confirmed is no correction. With
        ``holdout_path``, the records with an editor-confirmed label (a correction or a confirmation) whose id
        falls in ``policy.holdout_share`` are written there instead, never to ``path``: the promotion guard scores
        the candidate on them. A correction whose record is gone or has no text, or whose label is not one of the
        classifying model's, is skipped and counted, never fatal. The time of the export is noted: corrections
        answered later wait for the next training (the App Home counts them). What became of each member's
        corrections is in the summary's ``members``.

        With ``recent_path``, the newest editor-labelled records (by their latest answer; :func:`store.trust.
        recent_count` of them, none when that is under 30) are written there instead, before the holdout and never
        to ``path``: the training scores the candidate on what came after the data it learnt from.
        """
        written = skipped = held_out = recent_written = 0
        retraining.mark_corrections_exported(self.connection, time.time())
        answers = {record_id: self.for_record(record_id) for record_id in self.record_ids()}
        reviews_by_record = {record_id: reviews.reviews_of(self.connection, record_id) for record_id in answers}
        trusted = sort_by_trust(answers, reviews_by_record, policy)
        rows = {record_id: self._trusted_row(record) for record_id, record in trusted.items()}
        recent: set[str] = set()
        if recent_path is not None:
            labelled = [record_id for record_id, row in rows.items() if row is not None]
            labelled.sort(key=lambda record_id: (max((a.at for a in answers[record_id]), default=0.0), record_id))
            count = recent_count(len(labelled))
            recent = set(labelled[len(labelled) - count :]) if count else set()
        members: dict[str, MemberTally] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        holdout_out = None if holdout_path is None else holdout_path.open("w", encoding="utf-8")
        recent_out = None if recent_path is None else recent_path.open("w", encoding="utf-8")
        try:
            with path.open("w", encoding="utf-8") as out:
                for record_id, record in trusted.items():
                    statuses = dict(record.statuses)
                    row = rows[record_id]
                    if record.label is not None and row is None:
                        skipped += 1
                        statuses = {u: (SKIPPED if s == USED else s) for u, s in statuses.items()}
                    elif row is not None and recent_out is not None and record_id in recent:
                        recent_out.write(json.dumps(row, ensure_ascii=False) + "\n")
                        recent_written += 1
                        statuses = {u: (HELD_OUT if s == USED else s) for u, s in statuses.items()}
                    elif row is not None and holdout_out is not None and in_holdout(record_id, policy.holdout_share):
                        holdout_out.write(json.dumps(row, ensure_ascii=False) + "\n")
                        held_out += 1
                        statuses = {u: (HELD_OUT if s == USED else s) for u, s in statuses.items()}
                    elif row is not None and record.label != record.predicted:
                        out.write(json.dumps(row, ensure_ascii=False) + "\n")
                        written += 1
                    for user, status in statuses.items():
                        members.setdefault(user, MemberTally()).add(status)
        finally:
            if holdout_out is not None:
                holdout_out.close()
            if recent_out is not None:
                recent_out.close()
        return ExportSummary(
            written=written,
            skipped=skipped,
            path=path,
            held_out=held_out,
            holdout_path=holdout_path,
            members=dict(sorted(members.items())),
            recent=recent_written,
            recent_path=recent_path,
        )

    def _trusted_row(self, record: TrustedRecord) -> dict[str, str] | None:
        """The training example of ``record``'s trusted label, or None (no label counts, record gone, no text,
        or a label the classifying model did not have)."""
        if record.label is None:
            return None
        try:
            found = self.classification(record.record_id)
        except ClassificationNotFoundError:
            return None
        article = found.article
        if record.label not in found.label_set or not article.text.strip():
            return None
        return {"title": article.title, "body": article.body, "slug": record.label}

    def pending_reviews(self, policy: TrustPolicy, limit: int = 20) -> list[PendingCorrection]:
        """The corrections waiting for an editor (made by members who are not editors, undecided for the label
        they chose), oldest first, at most ``limit``; records gone are left out."""
        return self._corrections_by_review(policy, None, limit)

    def rejected_reviews(self, policy: TrustPolicy, limit: int = 10) -> list[PendingCorrection]:
        """The corrections an editor rejected (kept, never trained on), newest first, at most ``limit``."""
        return self._corrections_by_review(policy, False, limit)

    def _corrections_by_review(self, policy: TrustPolicy, decided: bool | None, limit: int) -> list[PendingCorrection]:
        members: list[Any] = self.connection.zrange(FEEDBACK_WRONG.key_for(), 0, -1)
        order = members if decided is None else list(reversed(members))
        found: list[PendingCorrection] = []
        for member in order:
            user, _, record_id = as_str(member).partition(":")
            if policy.is_editor(user):
                continue
            answer = self.of_user(record_id, user)
            if answer is None or answer.correct:
                continue
            review = reviews.reviews_of(self.connection, record_id).get(user)
            state = None if review is None or review.chosen != answer.chosen else review.accepted
            if state is not decided:
                continue
            try:
                record = self.classification(record_id)
            except ClassificationNotFoundError:
                continue
            found.append(PendingCorrection(answer, record.title or clip_text(record.body), record.label_set))
            if len(found) >= limit:
                break
        return found

    def unsure_to_label(self, policy: TrustPolicy, limit: int = 500) -> list[UnsureArticle]:
        """Today's unsure articles (the newsroom's day) that no editor has labelled yet, oldest first, at most
        ``limit``; records gone are left out."""
        found: list[UnsureArticle] = []
        for record_id, at in live.unsure_today(self.connection, tz=ZoneInfo(self.timezone)):
            if any(policy.is_editor(answer.user) for answer in self.for_record(record_id)):
                continue
            try:
                record = self.classification(record_id)
            except ClassificationNotFoundError:
                continue
            found.append(
                UnsureArticle(record_id, record.title or clip_text(record.body), record.slug, record.label_set, at)
            )
            if len(found) >= limit:
                break
        return found

    def review(self, record_id: str, user: str, editor: str, *, accept: bool) -> Review:
        """``editor`` accepts or rejects ``user``'s correction of ``record_id`` (as it stands now); nothing is
        deleted. :class:`ClassificationNotFoundError` when that member has no correction on the record."""
        answer = self.of_user(record_id, user)
        if answer is None or answer.correct:
            raise ClassificationNotFoundError(record_id)
        decision = Review(record_id, user, answer.chosen, accept, editor, time.time())
        reviews.put_review(self.connection, decision)
        return decision

    def export_dataset(self, out: IO[str], path: Path | None = None) -> DatasetSummary:
        """Write every classification people answered as one JSON line in the dataset format training reads
        (:mod:`training.dataset`): ``{"title", "text", "label"}`` — the article as it was classified and the
        label most people chose (a correction, or the prediction confirmed) — plus columns the loader ignores:
        ``feedback`` (``correction`` or ``confirmation``), ``predicted``, ``votes``, ``model_version``,
        ``record_id`` and ``reviews`` (each corrector's review state: ``accepted``, ``rejected`` or ``undecided``;
        editors' own corrections need none). Every answer is here, whatever its trust: held and rejected
        corrections stay visible. A record that is gone or has no text is skipped and counted. Unlike
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
                "reviews": _review_states(items, reviews.reviews_of(self.connection, record_id)),
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


def clip_text(text: str, most: int = 80) -> str:
    """The start of ``text`` on one line (a title for a record without one)."""
    line = " ".join(text.split())
    return line if len(line) <= most else line[: most - 1] + "…"


def _review_states(items: list[FeedbackAnswer], decisions: dict[str, Review]) -> dict[str, str]:
    """Each correction's review state by the member who made it (a decision counts for the label it was about)."""
    states = {}
    for answer in items:
        if answer.correct:
            continue
        decision = decisions.get(answer.user)
        if decision is None or decision.chosen != answer.chosen:
            states[answer.user] = "undecided"
        else:
            states[answer.user] = "accepted" if decision.accepted else "rejected"
    return states
