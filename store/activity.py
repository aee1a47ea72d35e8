"""The App Home's activity: articles classified per day, each user's recent classifications, and who opened
the Home lately (their Home is republished when the model changes)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any, ClassVar

from redis import Redis

from common.labels import LIVEDOOR, LabelSet
from store.classifications import ClassificationRecord, decode_labels
from store.record import Key, as_str

# A day's set of classified record ids outlives the 7 days that "this week" adds up.
CLASSIFIED_DAY_TTL_S = 8 * 24 * 3600
# Each user's last few classifications, shown on their Home; forgotten after a month without one.
RECENT_PER_USER = 5
RECENT_TTL_S = 30 * 24 * 3600
# Who opened the Home within this long has it republished when the model changes (the newest ones, at most).
HOME_VIEWER_TTL_S = 24 * 3600
HOME_REFRESH_MAX_VIEWERS = 50
WEEK_DAYS = 7


CLASSIFIED_DAY = Key(
    "newsbot:stats:classified:{day}",
    "set of record ids (day in NEWSROOM_TIMEZONE)",
    "CLASSIFIED_DAY_TTL_S",
    CLASSIFIED_DAY_TTL_S,
)
RECENT = Key(
    "newsbot:recent:{user}",
    f"zset record id → when, the last RECENT_PER_USER ({RECENT_PER_USER})",
    "RECENT_TTL_S after their last classification",
    RECENT_TTL_S,
)
HOME_VIEWERS = Key(
    "newsbot:home:viewers", "zset user → when they last opened the Home", "HOME_VIEWER_TTL_S", HOME_VIEWER_TTL_S
)


def newsroom_day(at: float, tz: tzinfo) -> str:
    """The calendar day (``YYYY-MM-DD``) in the newsroom's time zone at ``at``."""
    return datetime.fromtimestamp(at, tz).date().isoformat()


def count_classifications(
    connection: Redis, record_ids: list[str], user: str | None, *, tz: tzinfo, at: float | None = None
) -> None:
    """Count stored records for today in ``tz`` (a set: a retried job counts once) and remember them as ``user``'s
    recent."""
    if not record_ids:
        return
    now = time.time() if at is None else at
    day = CLASSIFIED_DAY.key_for(newsroom_day(now, tz))
    with connection.pipeline() as pipe:
        pipe.sadd(day, *record_ids)
        pipe.expire(day, CLASSIFIED_DAY_TTL_S)
        if user:
            key = RECENT.key_for(user)
            # the n-th article of a message sorts after the (n-1)-th: newest first on the Home
            pipe.zadd(key, {record_id: now + i / 1000 for i, record_id in enumerate(record_ids)})
            pipe.zremrangebyrank(key, 0, -RECENT_PER_USER - 1)
            pipe.expire(key, RECENT_TTL_S)
        pipe.execute()


def classified_counts(connection: Redis, *, tz: tzinfo, at: float | None = None) -> tuple[int, int]:
    """Articles classified today and in the last 7 days (calendar days in ``tz``, today included)."""
    now = time.time() if at is None else at
    today = datetime.fromtimestamp(now, tz).date()
    with connection.pipeline() as pipe:
        for back in range(WEEK_DAYS):
            pipe.scard(CLASSIFIED_DAY.key_for((today - timedelta(days=back)).isoformat()))
        counts = [int(n) for n in pipe.execute()]
    return counts[0], sum(counts)


@dataclass(frozen=True, slots=True)
class RecentClassification:
    """One of a user's recent classifications, as their Home lists it."""

    record_id: str
    title: str  # the title, or the body's first words when the article had none
    slug: str
    at: float
    labels: LabelSet | None = None  # the classifying model's labels (None: livedoor's, from an earlier release)

    @property
    def shown_label(self) -> str:
        """The label's display names (the label itself when it has none), unescaped."""
        labels = self.labels if self.labels is not None else LIVEDOOR
        return labels.display(self.slug) if self.slug in labels else self.slug


RECENT_TITLE_CHARS = 60


def recent_classifications(connection: Redis, user: str) -> list[RecentClassification]:
    """``user``'s last RECENT_PER_USER classifications, newest first (records gone since are left out)."""
    raw: Any = connection.zrevrange(RECENT.key_for(user), 0, RECENT_PER_USER - 1, withscores=True)
    entries: list[tuple[Any, float]] = list(raw)
    if not entries:
        return []
    with connection.pipeline() as pipe:
        for record_id, _ in entries:
            pipe.hmget(ClassificationRecord.key_for(as_str(record_id)), ["title", "slug", "body", "labels"])
        rows: list[list[Any]] = pipe.execute()
    found = []
    for (record_id, at), (title, slug, body, labels) in zip(entries, rows, strict=True):
        if slug is None:
            continue
        shown = " ".join((as_str(title) or as_str(body)).split())
        if len(shown) > RECENT_TITLE_CHARS:
            shown = shown[: RECENT_TITLE_CHARS - 1] + "…"
        found.append(
            RecentClassification(as_str(record_id), shown, as_str(slug), float(at), decode_labels(as_str(labels)))
        )
    return found


@dataclass(frozen=True, slots=True)
class HomeViewer:
    """Someone who opened the Home: their DM channel with the bot (where Home actions answer) and the role the
    bot saw then (a republished Home shows the same buttons; every click is checked again on the server)."""

    KEY: ClassVar[Key] = Key(
        "newsbot:home:viewer:{user}",
        "JSON, HomeViewer: DM channel, admin as seen then, when",
        "HOME_VIEWER_TTL_S",
        HOME_VIEWER_TTL_S,
    )

    user: str
    channel: str
    admin: bool
    at: float

    @classmethod
    def key_for(cls, user: str) -> str:
        return cls.KEY.key_for(user)

    def encode(self) -> str:
        return json.dumps({"channel": self.channel, "admin": self.admin, "at": self.at})

    @classmethod
    def decode(cls, user: str, raw: bytes | str) -> HomeViewer:
        data = json.loads(as_str(raw))
        return cls(user, str(data.get("channel", "")), bool(data.get("admin")), float(data.get("at", 0.0)))


def note_home_viewer(connection: Redis, viewer: HomeViewer) -> None:
    """Remember that ``viewer`` opened the Home now; viewers older than HOME_VIEWER_TTL_S are dropped."""
    with connection.pipeline() as pipe:
        pipe.set(HomeViewer.key_for(viewer.user), viewer.encode(), ex=HomeViewer.KEY.ttl_s)
        pipe.zadd(HOME_VIEWERS.key_for(), {viewer.user: viewer.at})
        pipe.zremrangebyscore(HOME_VIEWERS.key_for(), "-inf", f"({viewer.at - HOME_VIEWER_TTL_S}")
        pipe.expire(HOME_VIEWERS.key_for(), HOME_VIEWER_TTL_S)
        pipe.execute()


def home_viewer(connection: Redis, user: str) -> HomeViewer | None:
    raw: Any = connection.get(HomeViewer.key_for(user))
    return None if raw is None else HomeViewer.decode(user, raw)


def home_viewers(connection: Redis, limit: int = HOME_REFRESH_MAX_VIEWERS, at: float | None = None) -> list[HomeViewer]:
    """Who opened the Home within HOME_VIEWER_TTL_S, most recent first, at most ``limit``."""
    now = time.time() if at is None else at
    users: list[Any] = connection.zrevrangebyscore(
        HOME_VIEWERS.key_for(), "+inf", now - HOME_VIEWER_TTL_S, start=0, num=limit
    )
    if not users:
        return []
    names = [as_str(u) for u in users]
    raws: list[Any] = connection.mget([HomeViewer.key_for(u) for u in names])
    return [HomeViewer.decode(u, raw) for u, raw in zip(names, raws, strict=True) if raw is not None]
