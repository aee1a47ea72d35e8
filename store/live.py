"""Accuracy measured live, per served version: per day (the newsroom's calendar day the article was classified),
how many articles the version answered, how many of them unsure, and how editors labelled them (confirmed,
corrected to another of its labels, or a label outside its labels).

Counters, not a scan: the App Home, ``/retrain status`` and every Prometheus scrape read them, so a read is seven
small hashes per version however many articles a week brings. Each article also has its state in a second hash
(``s``/``u`` when classified, then ``s:confirmed`` …), which keeps the counters exact: a retried job counts its
article once (HSETNX), and an editor who changes an answer, or a second editor answering the same article, moves
the article from one outcome to the other (the latest editor's answer counts), never counts it twice. Only editors'
answers count (the caller says who is an editor: :mod:`bot.editors`); an answer on an article classified before
these counters existed, or more than LIVE_TTL_S ago, counts nowhere.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from redis import Redis

from store.record import Key, as_str

# The counters of a day outlive the 7 days that the live figures add up.
LIVE_TTL_S = 8 * 24 * 3600
LIVE_DAYS = 7
CONFIRMED, CORRECTED, OUTSIDE = "confirmed", "corrected", "outside"
OUTCOMES = (CONFIRMED, CORRECTED, OUTSIDE)

LIVE_COUNTS = Key(
    "newsbot:stats:live:count:{day_version}",
    "hash answered/unsure/confirmed/corrected/outside of one version's articles of one day (`<day>:<version>`)",
    "LIVE_TTL_S",
    LIVE_TTL_S,
)
LIVE_STATES = Key(
    "newsbot:stats:live:state:{day_version}",
    "hash record id → `s`|`u`[`:<editor's outcome>`] (`<day>:<version>`)",
    "LIVE_TTL_S",
    LIVE_TTL_S,
)

# Today's unsure articles wait for an editor's label in the App Home (oldest first) for this long.
UNSURE_DAY_TTL_S = 2 * 24 * 3600
# The articles answered together (one message's) are listed a microsecond apart, in their order: well above a
# score's resolution (a double near 1.8e9 s resolves 2.4e-7 s), far below a second.
ANSWER_STEP_S = 1e-6
UNSURE_DAY = Key(
    "newsbot:stats:unsure:{day}",
    "zset record id → when classified: the day's unsure articles (the editors' review list)",
    "UNSURE_DAY_TTL_S",
    UNSURE_DAY_TTL_S,
)

# KEYS: counts, states; ARGV: ttl, record id, 's' | 'u'. Counted once per record (a retried job rewrites nothing).
_CLASSIFIED = """
if redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3]) == 1 then
    redis.call('HINCRBY', KEYS[1], 'answered', 1)
    if ARGV[3] == 'u' then
        redis.call('HINCRBY', KEYS[1], 'unsure', 1)
    end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return 1
"""

# KEYS: counts, states; ARGV: record id, outcome. The record's earlier outcome (if any) is replaced by this one.
_LABELLED = """
local state = redis.call('HGET', KEYS[2], ARGV[1])
if not state then
    return 0
end
local base = string.sub(state, 1, 1)
local earlier = string.sub(state, 3)
if earlier == ARGV[2] then
    return 1
end
if earlier ~= '' then
    redis.call('HINCRBY', KEYS[1], earlier, -1)
end
redis.call('HSET', KEYS[2], ARGV[1], base .. ':' .. ARGV[2])
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
return 1
"""


def _part(day: str, version: str) -> str:
    return f"{day}:{version}"


def _day(at: float, tz: tzinfo) -> str:
    return datetime.fromtimestamp(at, tz).date().isoformat()


def classified_day(created_at: str, tz: tzinfo) -> str | None:
    """The newsroom day of a record's ``created_at`` (ISO), None when it has none."""
    try:
        return _day(datetime.fromisoformat(created_at).timestamp(), tz) if created_at else None
    except ValueError:
        return None


def count_answered(
    connection: Redis, version: str, answers: Iterable[tuple[str, bool]], *, tz: tzinfo, at: float | None = None
) -> None:
    """Count ``answers`` (record id, unsure) as answered today by ``version``; the unsure ones join today's review
    list, in the order of ``answers`` (the articles of one message: each a microsecond after the one before, since
    Redis orders equal scores by member, and ``<job>:10`` comes before ``<job>:2``)."""
    now = time.time() if at is None else at
    day = _day(now, tz)
    keys = [LIVE_COUNTS.key_for(_part(day, version)), LIVE_STATES.key_for(_part(day, version))]
    with connection.pipeline(transaction=False) as pipe:
        for index, (record_id, unsure) in enumerate(answers):
            pipe.eval(_CLASSIFIED, 2, *keys, LIVE_TTL_S, record_id, "u" if unsure else "s")
            if unsure:
                pipe.zadd(UNSURE_DAY.key_for(day), {record_id: now + index * ANSWER_STEP_S}, nx=True)
                pipe.expire(UNSURE_DAY.key_for(day), UNSURE_DAY_TTL_S)
        pipe.execute()


def unsure_today(connection: Redis, *, tz: tzinfo, at: float | None = None) -> list[tuple[str, float]]:
    """Today's unsure articles (record id, when classified), oldest first."""
    day = _day(time.time() if at is None else at, tz)
    raw: Any = connection.zrange(UNSURE_DAY.key_for(day), 0, -1, withscores=True)
    return [(as_str(record_id), float(when)) for record_id, when in raw]


def outcome_of(predicted: str, chosen: str, labels: Iterable[str]) -> str:
    """What an editor's label says of the answer: confirmed, corrected (another of the model's labels), outside."""
    if chosen == predicted:
        return CONFIRMED
    return CORRECTED if chosen in set(labels) else OUTSIDE


def count_labelled(connection: Redis, version: str, day: str, record_id: str, outcome: str) -> bool:
    """Note an editor's ``outcome`` on ``record_id`` (classified on ``day`` by ``version``); False when the article
    is not counted (classified before the counters, or too long ago)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    keys = [LIVE_COUNTS.key_for(_part(day, version)), LIVE_STATES.key_for(_part(day, version))]
    return bool(connection.eval(_LABELLED, 2, *keys, record_id, outcome))


@dataclass(frozen=True, slots=True)
class LiveFigures:
    """One version's last LIVE_DAYS days: answers, unsure ones, and editors' labels by outcome."""

    version: str
    answered: int = 0
    unsure: int = 0
    confirmed: int = 0
    corrected: int = 0
    outside: int = 0

    @property
    def labelled(self) -> int:
        return self.confirmed + self.corrected + self.outside

    @property
    def accuracy(self) -> float | None:
        """Share of editor-labelled answers the editors confirmed (None without any)."""
        return self.confirmed / self.labelled if self.labelled else None

    @property
    def unsure_share(self) -> float | None:
        return self.unsure / self.answered if self.answered else None

    @property
    def outside_share(self) -> float | None:
        """Share of editors' labels that were outside the model's labels."""
        return self.outside / self.labelled if self.labelled else None


def live_figures(connection: Redis, version: str, *, tz: tzinfo, at: float | None = None) -> LiveFigures:
    """``version``'s figures over the last LIVE_DAYS calendar days in ``tz`` (today included)."""
    today = datetime.fromtimestamp(time.time() if at is None else at, tz).date()
    with connection.pipeline(transaction=False) as pipe:
        for back in range(LIVE_DAYS):
            pipe.hgetall(LIVE_COUNTS.key_for(_part((today - timedelta(days=back)).isoformat(), version)))
        days: list[dict[Any, Any]] = pipe.execute()
    totals = dict.fromkeys(("answered", "unsure", *OUTCOMES), 0)
    for raw in days:
        for name, value in raw.items():
            if as_str(name) in totals:
                totals[as_str(name)] += int(value)
    return LiveFigures(version, **{name: max(0, count) for name, count in totals.items()})


# A drift warning needs this many editor-labelled answers: fewer say too little about the live accuracy.
DRIFT_MIN_LABELLED = 30
# How many standard errors below the test accuracy count as "clearly" below it (one-sided, about 2.3 % by chance).
DRIFT_SIGMAS = 2.0


def drift_margin(test_accuracy: float, labelled: int) -> float:
    """The binomial margin: DRIFT_SIGMAS standard errors of an accuracy ``test_accuracy`` measured on ``labelled``
    answers."""
    p = min(max(test_accuracy, 0.0), 1.0)
    return DRIFT_SIGMAS * math.sqrt(max(p * (1 - p), 1e-4) / max(labelled, 1))


def drifted(figures: LiveFigures, test_accuracy: float | None) -> bool:
    """Live accuracy clearly below the test accuracy: at least DRIFT_MIN_LABELLED editor-labelled answers, and the
    live accuracy below the test accuracy by more than :func:`drift_margin`."""
    if test_accuracy is None or figures.accuracy is None or figures.labelled < DRIFT_MIN_LABELLED:
        return False
    return figures.accuracy < test_accuracy - drift_margin(test_accuracy, figures.labelled)


def served_figures(connection: Redis, *, tz: tzinfo) -> list[LiveFigures]:
    """The live figures of every version a worker serves now (from their serving states), by version."""
    from store.serving import serving_states  # a sibling domain, read only here

    versions = sorted({state.version for state in serving_states(connection) if state.version})
    return [live_figures(connection, version, tz=tz) for version in versions]


def gauge_samples(figures: Iterable[LiveFigures]) -> list[tuple[str, dict[str, float | None]]]:
    """What the Prometheus gauges show of ``figures``: per version, each figure (None: not measured yet)."""
    return [
        (
            f.version,
            {
                "accuracy": f.accuracy,
                "labelled": float(f.labelled),
                "answered": float(f.answered),
                "unsure_share": f.unsure_share,
                "outside_share": f.outside_share,
            },
        )
        for f in figures
    ]
