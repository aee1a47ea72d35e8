"""Corrections by trust: which members' corrections a training may use, which wait for an editor's review, which
are over a member's daily cap, and which records make the editor-confirmed holdout.

* An editor's answers count as they are (:class:`TrustPolicy.editors`: ADMIN_USER_IDS, EDITOR_USER_IDS and the
  members of EDITOR_USERGROUP). Anyone else's correction is *held* until an editor accepts it (then it counts) or
  rejects it (it stays stored, and never counts). A member's confirmation of the model's answer counts only from
  an editor.
* At most :attr:`TrustPolicy.daily_cap` corrections per member per day (the newsroom's calendar day, by when the
  answer was given, earliest first) count; the others are *capped*.
* A record's label is the verdict of the answers that count (:func:`store.feedback.verdict`); a correction whose
  label lost that vote is *outvoted*.
* Records with such a label whose id falls in the holdout share (a fixed hash of the id, so the same records every
  time) are *held out*: never trained on, they score the candidate against the current model
  (:mod:`training.api`).

Nothing here deletes anything: every answer stays stored, whatever its status.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from store.answers import FeedbackAnswer, verdict
from store.reviews import Review

# A correction's status in a training (MemberTally's fields).
USED, HELD, CAPPED, REJECTED, OUTVOTED, HELD_OUT, SKIPPED = (
    "used",
    "held",
    "capped",
    "rejected",
    "outvoted",
    "held_out",
    "skipped",
)


# The newest editor-labelled records, held out of training to score a candidate on what came after its training data:
# RECENT_SHARE of the labelled records, at most RECENT_MAX, and only when that makes at least RECENT_MIN_EXAMPLES
# (fewer would refuse or pass a candidate on noise; training.api applies the same minimum).
RECENT_SHARE = 0.2
RECENT_MAX = 100
RECENT_MIN_EXAMPLES = 30


def recent_count(labelled: int) -> int:
    """How many of ``labelled`` editor-labelled records, newest first, are held out as the recent ones (0: too few)."""
    count = min(RECENT_MAX, int(labelled * RECENT_SHARE))
    return count if count >= RECENT_MIN_EXAMPLES else 0


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    """Whose answers count, how many corrections per member per day, and the holdout's share of the records."""

    editors: frozenset[str]
    daily_cap: int = 20
    timezone: str = "UTC"
    holdout_share: float = 0.2

    def is_editor(self, user: str) -> bool:
        return user in self.editors


@dataclass(slots=True)
class MemberTally:
    """What became of one member's corrections in one training."""

    used: int = 0
    held: int = 0
    capped: int = 0
    rejected: int = 0
    outvoted: int = 0
    held_out: int = 0
    skipped: int = 0

    def add(self, status: str) -> None:
        setattr(self, status, getattr(self, status) + 1)


@dataclass(frozen=True, slots=True)
class TrustedRecord:
    """One record's answers sorted by trust: the label the counted answers settle on (None: none counts), and
    each correction's status by the member who made it."""

    record_id: str
    predicted: str
    label: str | None
    statuses: dict[str, str] = field(default_factory=dict)  # user → status, corrections only


def in_holdout(record_id: str, share: float) -> bool:
    """Whether ``record_id`` is in the holdout: a fixed hash of the id, so a record never moves in or out."""
    if share <= 0:
        return False
    digest = int.from_bytes(hashlib.sha256(record_id.encode("utf-8")).digest()[:8], "big")
    return digest / 2**64 < share


def sort_by_trust(
    answers: Mapping[str, Sequence[FeedbackAnswer]],
    reviews: Mapping[str, Mapping[str, Review]],
    policy: TrustPolicy,
) -> dict[str, TrustedRecord]:
    """Every record's answers (``answers`` by record id, oldest first) sorted by ``policy``; ``reviews`` are the
    editors' decisions by record id, then by the member whose correction each is about."""
    statuses: dict[tuple[str, str], str] = {}
    eligible: list[FeedbackAnswer] = []
    for record_id, items in answers.items():
        decisions = reviews.get(record_id, {})
        for answer in items:
            if answer.correct:
                continue
            if policy.is_editor(answer.user):
                eligible.append(answer)
                continue
            decision = decisions.get(answer.user)
            if decision is None or decision.chosen != answer.chosen:
                statuses[(record_id, answer.user)] = HELD
            elif decision.accepted:
                eligible.append(answer)
            else:
                statuses[(record_id, answer.user)] = REJECTED
    zone = ZoneInfo(policy.timezone)
    per_day: Counter[tuple[str, str]] = Counter()
    counted: set[tuple[str, str]] = set()
    for answer in sorted(eligible, key=lambda a: (a.at, a.record_id, a.user)):
        day = datetime.fromtimestamp(answer.at, zone).date().isoformat()
        per_day[(answer.user, day)] += 1
        if per_day[(answer.user, day)] > policy.daily_cap:
            statuses[(answer.record_id, answer.user)] = CAPPED
        else:
            counted.add((answer.record_id, answer.user))
    sorted_records: dict[str, TrustedRecord] = {}
    for record_id, items in answers.items():
        trusted = [a for a in items if (a.correct and policy.is_editor(a.user)) or (record_id, a.user) in counted]
        label = verdict(trusted)
        record = TrustedRecord(record_id, items[-1].predicted if items else "", label)
        for answer in items:
            if answer.correct:
                continue
            key = (record_id, answer.user)
            if key in counted:
                record.statuses[answer.user] = USED if answer.chosen == label else OUTVOTED
            else:
                record.statuses[answer.user] = statuses[key]
        sorted_records[record_id] = record
    return sorted_records
