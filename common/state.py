"""Everything the product keeps in Redis besides RQ's own keys: key names, TTLs, and typed records.

Like rq's own ``rq.defaults`` and ``Job.key_for``, every key name and TTL is defined here once, and each
record kept in Redis is a dataclass with exactly one ``encode`` and one ``decode``. The bot and the workers
read and write these keys only through this module.

Keys (``<…>`` is filled in per record):

========================================  ==========================  ========================================
key                                       value                       lifetime
========================================  ==========================  ========================================
``newsbot:classification:<record id>``    hash, ClassificationRecord  RECORD_TTL_DAYS; none once it has feedback
``newsbot:feedback:<record id>``          hash user → FeedbackAnswer  no TTL (feeds retraining)
``newsbot:feedback:index``                set of record ids           no TTL
``newsbot:feedback:message:<record id>``  JSON, the reply as shown    as its classification record
``newsbot:delivery:<delivery key>``       "1" (DeliveryClaim)         DELIVERY_TTL_S
``newsbot:replied:<job id>``              reply ts (ReplyMark)        REPLY_MARK_TTL_S
``newsbot:training:lock``                 job id (TrainingLock)       queued: job timeout + TRAINING_LOCK_MARGIN_S;
                                                                      running: TRAINING_LOCK_TTL_S, renewed
``newsbot:training:cancel:<job id>``      user id (TrainingCancel)    TRAINING_PROGRESS_TTL_S
``newsbot:training:progress``             hash, TrainingProgress      TRAINING_PROGRESS_TTL_S once it ends
``newsbot:serving:<worker name>``         hash, ServingState          serving_ttl_s(poll interval)
``newsbot:watch``                         hash channel → Watch        no TTL (an admin's setting)
``newsbot:routes``                        hash label → Route          no TTL (an admin's setting)
``newsbot:stats:classified:<day>``        set of record ids           CLASSIFIED_DAY_TTL_S
``newsbot:stats:feedback:correct``        set of ``<user>:<record>``  no TTL (as the answers)
``newsbot:stats:feedback:wrong``          zset ``<user>:<record>``    no TTL (score: when answered)
``newsbot:training:corrections_cutoff``   time of the last export     no TTL
``newsbot:recent:<user>``                 zset record id → time       RECENT_TTL_S (last RECENT_PER_USER)
``newsbot:home:viewers``                  zset user → last opened     HOME_VIEWER_TTL_S
``newsbot:home:viewer:<user>``            JSON, HomeViewer            HOME_VIEWER_TTL_S
========================================  ==========================  ========================================
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any, Generic, TypeVar

from redis import Redis

from common.articles import Article
from common.exceptions import ClassificationNotFoundError, LabelSetError
from common.labels import LIVEDOOR, LabelSet

R = TypeVar("R")

# --- key names ------------------------------------------------------------------------------------

CLASSIFICATION_KEY_PREFIX = "newsbot:classification:"
FEEDBACK_KEY_PREFIX = "newsbot:feedback:"
FEEDBACK_INDEX_KEY = "newsbot:feedback:index"
REPLY_SNAPSHOT_KEY_PREFIX = "newsbot:feedback:message:"
DELIVERY_KEY_PREFIX = "newsbot:delivery:"
REPLY_MARK_KEY_PREFIX = "newsbot:replied:"
TRAINING_LOCK_KEY = "newsbot:training:lock"
TRAINING_CANCEL_KEY_PREFIX = "newsbot:training:cancel:"
TRAINING_PROGRESS_KEY = "newsbot:training:progress"
SERVING_KEY_PREFIX = "newsbot:serving:"
WATCH_KEY = "newsbot:watch"
ROUTES_KEY = "newsbot:routes"

# --- TTLs (seconds) -------------------------------------------------------------------------------

# How long a Slack delivery id is remembered. Slack retries an event for about 5 minutes; keep it a day.
DELIVERY_TTL_S = 24 * 3600
# A job's reply mark: a retry (of a later step) within this long never posts the reply twice.
REPLY_MARK_TTL_S = 7 * 24 * 3600
# The progress hash is kept this long after the training ends, for /retrain status.
TRAINING_PROGRESS_TTL_S = 24 * 3600
# A queued training's lock outlives the training job's own timeout by this margin, in case nothing releases it.
TRAINING_LOCK_MARGIN_S = 3600
# Once the training runs, its worker holds the lock with the TRAINING_LOCK_TTL_S setting (default 60 s) and renews
# it every third of that: a worker killed with SIGKILL leaves a lock that lapses within that TTL.
TRAINING_LOCK_RENEWALS_PER_TTL = 3
# RQ keeps a job's result (and its job hash) this long after it finished, and a failed job this long.
JOB_RESULT_TTL_S = 7 * 24 * 3600
JOB_FAILURE_TTL_S = 30 * 24 * 3600
# The worker's own TTL in RQ. RQ blocks on the queue for WORKER_TTL_S - 15 s between two looks at its
# maintenance clock (405 s by default), so a short TTL is what makes worker.batching.MAINTENANCE_INTERVAL_S real.
WORKER_TTL_S = 20
# A job's lease in RQ (its StartedJobRegistry entry and execution): renewed every
# worker.batching.HEARTBEAT_INTERVAL_S while its worker lives; once a dead worker's lease lapses, the next
# maintenance of a live worker hands the job back (BatchingWorker.get_heartbeat_ttl).
JOB_LEASE_S = 10
# What a classification record keeps of an article's body. The model reads at most 512 tokens (about 1,000 to
# 1,500 characters of Japanese), from the head or from head and tail; livedoor news articles run 1,000–3,000
# characters. 20,000 characters (about 60 KB in UTF-8) keep every real article whole for retraining while a
# page that is mostly comments or boilerplate cannot cost more (it was 50,000: about 150 KB a record).
RECORD_BODY_MAX_CHARS = 20_000


def serving_ttl_s(poll_interval_s: float) -> int:
    """A worker's serving hash outlives a few of its publishing intervals, then vanishes with the worker."""
    return max(30, int(poll_interval_s * 3) + 1)


# --- the one bytes → str helper -------------------------------------------------------------------


def as_str(value: bytes | str | float | None) -> str:
    """What redis-py returned, as text: bytes decoded as UTF-8 (bad bytes replaced), None as ""."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _fields(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {as_str(k): as_str(v) for k, v in raw.items()}


def _float(value: str) -> float | None:
    return float(value) if value else None


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


# --- classification records -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClassificationRecord:
    """What the worker classified for one article, kept for feedback and retraining.

    ``labels`` is the label set (with display names) of the model that classified it, so that the bot offers
    exactly those labels when someone says the prediction is wrong (the bot never reads MODEL_DIR); None for a
    record written before records carried it, which were all livedoor's (:attr:`label_set`).
    """

    record_id: str
    title: str
    body: str
    url: str
    slug: str
    model_version: str
    channel: str
    ts: str = ""  # the reply's ts ("" until replied, and for replies through response_url)
    created_at: str = ""
    labels: LabelSet | None = None

    @property
    def article(self) -> Article:
        return Article(title=self.title, body=self.body)

    @property
    def label_set(self) -> LabelSet:
        """The labels of the model that classified the article (livedoor's for a record without them)."""
        return self.labels if self.labels is not None else LIVEDOOR

    @staticmethod
    def key_for(record_id: str) -> str:
        return f"{CLASSIFICATION_KEY_PREFIX}{record_id}"

    def encode(self) -> dict[str, str]:
        fields = {name: str(getattr(self, name)) for name in _RECORD_TEXT_FIELDS}
        fields["body"] = self.body[:RECORD_BODY_MAX_CHARS]
        fields["labels"] = encode_labels(self.labels)
        return fields

    @classmethod
    def decode(cls, record_id: str, raw: Mapping[Any, Any]) -> ClassificationRecord:
        fields = _fields(raw)
        title = fields.get("title", "")
        body = fields.get("body")
        if body is None:  # written by an earlier release: `text` held the title and the body together
            text = fields.get("text", "")
            body = text.removeprefix(f"{title}\n") if title else text
        return cls(
            record_id=record_id,
            title=title,
            body=body,
            url=fields.get("url", ""),
            slug=fields.get("slug", ""),
            model_version=fields.get("model_version", ""),
            channel=fields.get("channel", ""),
            ts=fields.get("ts", ""),
            created_at=fields.get("created_at", ""),
            labels=decode_labels(fields.get("labels", "")),
        )


_RECORD_TEXT_FIELDS = ("title", "body", "url", "slug", "model_version", "channel", "ts", "created_at")


def encode_labels(labels: LabelSet | None) -> str:
    """A label set as compact JSON (:meth:`LabelSet.to_dict`), "" for none."""
    if labels is None:
        return ""
    return json.dumps(labels.to_dict(), ensure_ascii=False, separators=(",", ":"))


def decode_labels(raw: str) -> LabelSet | None:
    """The label set :func:`encode_labels` wrote; None for "" or anything unreadable."""
    if not raw:
        return None
    try:
        return LabelSet.from_json(raw)
    except LabelSetError:
        return None


# HSET the record (ARGV[2..]: field, value, …); EXPIRE it after ARGV[1] s unless 0 or the record has feedback.
_PUT_RECORD = """
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
if tonumber(ARGV[1]) > 0 and redis.call('EXISTS', KEYS[2]) == 0 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return 1
"""


def put_classification(connection: Redis, record: ClassificationRecord, ttl_s: int = 0) -> None:
    """Store (or overwrite, for a retried job) one classification record.

    It expires after ``ttl_s`` (RECORD_TTL_DAYS; 0: never) unless feedback arrives on it
    (:func:`put_feedback` makes it permanent); a record that already has feedback keeps no TTL.
    """
    fields = [part for item in record.encode().items() for part in item]
    keys = [ClassificationRecord.key_for(record.record_id), FeedbackAnswer.key_for(record.record_id)]
    connection.eval(_PUT_RECORD, len(keys), *keys, max(0, int(ttl_s)), *fields)


def set_reply_ts(connection: Redis, record_ids: Iterable[str], ts: str) -> None:
    """Note on each record the ts of the Slack reply that shows it."""
    with connection.pipeline() as pipe:
        for record_id in record_ids:
            pipe.hset(ClassificationRecord.key_for(record_id), "ts", ts)
        pipe.execute()


def get_classification(connection: Redis, record_id: str) -> ClassificationRecord:
    """The record, or :class:`ClassificationNotFoundError`."""
    raw: dict[Any, Any] = connection.hgetall(ClassificationRecord.key_for(record_id))
    if not raw:
        raise ClassificationNotFoundError(record_id)
    return ClassificationRecord.decode(record_id, raw)


# --- feedback -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedbackAnswer:
    """One user's latest verdict on one classification (the article itself is in its ClassificationRecord)."""

    record_id: str
    user: str
    predicted: str
    chosen: str
    model_version: str
    at: float

    @property
    def correct(self) -> bool:
        return self.chosen == self.predicted

    @staticmethod
    def key_for(record_id: str) -> str:
        return f"{FEEDBACK_KEY_PREFIX}{record_id}"

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


def put_feedback(connection: Redis, answer: FeedbackAnswer) -> None:
    """Store ``answer``, replacing the user's earlier one on the same record, and index the record.

    The record and its reply snapshot are kept from now on (their RECORD_TTL_DAYS is removed): retraining
    reads the article from the record.
    """
    pipe = connection.pipeline(transaction=True)
    pipe.hset(FeedbackAnswer.key_for(answer.record_id), answer.user, answer.encode())
    pipe.sadd(FEEDBACK_INDEX_KEY, answer.record_id)
    _count_feedback(pipe, answer)
    pipe.persist(ClassificationRecord.key_for(answer.record_id))
    pipe.persist(reply_snapshot_key(answer.record_id))
    pipe.execute()


def feedback_answers(connection: Redis, record_id: str) -> list[FeedbackAnswer]:
    """Every user's answer on ``record_id``, oldest first."""
    raw: dict[Any, Any] = connection.hgetall(FeedbackAnswer.key_for(record_id))
    return sorted((FeedbackAnswer.decode(v) for v in raw.values()), key=lambda a: a.at)


def feedback_answer(connection: Redis, record_id: str, user: str) -> FeedbackAnswer | None:
    raw: Any = connection.hget(FeedbackAnswer.key_for(record_id), user)
    return FeedbackAnswer.decode(raw) if raw else None


def feedback_record_ids(connection: Redis) -> list[str]:
    """The records that have feedback, sorted."""
    members: set[Any] = connection.smembers(FEEDBACK_INDEX_KEY)
    return sorted(as_str(m) for m in members)


def reply_snapshot_key(record_id: str) -> str:
    return f"{REPLY_SNAPSHOT_KEY_PREFIX}{record_id}"


# SET the snapshot with the TTL its record has now (none when the record has none); nothing when it is gone.
_PUT_SNAPSHOT = """
local ttl = redis.call('PTTL', KEYS[2])
if ttl == -2 then
    return 0
elseif ttl > 0 then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
else
    redis.call('SET', KEYS[1], ARGV[1])
end
return 1
"""


def put_reply_snapshot(connection: Redis, record_id: str, message: Mapping[str, Any]) -> None:
    """Remember the classification reply as Slack last showed it (channel, ts, text, blocks).

    It expires with its classification record (kept as long once the record has feedback); a snapshot of a
    record that is gone is not kept.
    """
    keys = [reply_snapshot_key(record_id), ClassificationRecord.key_for(record_id)]
    connection.eval(_PUT_SNAPSHOT, len(keys), *keys, json.dumps(dict(message), ensure_ascii=False))


def reply_snapshot(connection: Redis, record_id: str) -> dict[str, Any] | None:
    raw: Any = connection.get(reply_snapshot_key(record_id))
    if not raw:
        return None
    data: dict[str, Any] = json.loads(raw)
    return data


# --- delivery claims and reply marks: at most one job per Slack delivery, one reply per job ---------


@dataclass(frozen=True, slots=True)
class DeliveryClaim:
    """A Slack delivery (event_id, trigger id, …) that has been enqueued; Slack's retries of it are refused."""

    delivery_key: str

    @property
    def key(self) -> str:
        return f"{DELIVERY_KEY_PREFIX}{self.delivery_key}"

    def encode(self) -> str:
        return "1"


def claim_delivery(connection: Redis, delivery_key: str) -> bool:
    """True the first time ``delivery_key`` is seen (atomic SET NX with DELIVERY_TTL_S)."""
    claim = DeliveryClaim(delivery_key)
    return bool(connection.set(claim.key, claim.encode(), nx=True, ex=DELIVERY_TTL_S))


def release_delivery(connection: Redis, delivery_key: str) -> None:
    """Forget a claim whose job could not be enqueued, so that Slack's retry can enqueue it."""
    connection.delete(DeliveryClaim(delivery_key).key)


@dataclass(frozen=True, slots=True)
class ReplyMark:
    """A job whose reply was posted, with the reply's ts ("" through response_url)."""

    job_id: str
    ts: str

    @staticmethod
    def key_for(job_id: str) -> str:
        return f"{REPLY_MARK_KEY_PREFIX}{job_id}"

    def encode(self) -> str:
        return self.ts

    @classmethod
    def decode(cls, job_id: str, raw: bytes | str) -> ReplyMark:
        return cls(job_id=job_id, ts=as_str(raw))


def reply_mark(connection: Redis, job_id: str) -> ReplyMark | None:
    raw: Any = connection.get(ReplyMark.key_for(job_id))
    return None if raw is None else ReplyMark.decode(job_id, raw)


def put_reply_mark(connection: Redis, mark: ReplyMark) -> None:
    connection.set(ReplyMark.key_for(mark.job_id), mark.encode(), ex=REPLY_MARK_TTL_S)


# --- the training lock and progress -----------------------------------------------------------------

# DEL the key only while it still holds ARGV[1]: a lock is released by its holder (or for it) only.
_RELEASE_IF_HELD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""
# EXPIRE the key while it holds ARGV[1]; when it is free and ARGV[3] is "1", SET it to ARGV[1] with that TTL.
_HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
    return redis.call('EXPIRE', KEYS[1], ARGV[2])
end
if holder == false and ARGV[3] == '1' then
    redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
    return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class TrainingLock:
    """The one training queued or running: its RQ job id."""

    job_id: str

    def encode(self) -> str:
        return self.job_id

    @classmethod
    def decode(cls, raw: bytes | str) -> TrainingLock:
        return cls(job_id=as_str(raw))


def acquire_training_lock(connection: Redis, job_id: str, job_timeout_s: int) -> bool:
    """Take the lock for ``job_id`` unless another training holds it (SET NX, TTL = timeout + margin)."""
    lock = TrainingLock(job_id)
    return bool(connection.set(TRAINING_LOCK_KEY, lock.encode(), nx=True, ex=job_timeout_s + TRAINING_LOCK_MARGIN_S))


def training_lock(connection: Redis) -> TrainingLock | None:
    """The lock as it is now, or None when no training holds it."""
    raw: Any = connection.get(TRAINING_LOCK_KEY)
    return TrainingLock.decode(raw) if raw else None


def release_training_lock(connection: Redis, job_id: str) -> bool:
    """Release the lock if ``job_id`` still holds it (atomically); True when it was released."""
    released = connection.eval(_RELEASE_IF_HELD, 1, TRAINING_LOCK_KEY, job_id)
    return bool(released)


def hold_training_lock(connection: Redis, job_id: str, ttl_s: int, *, take_if_free: bool = False) -> bool:
    """Set the lock's TTL to ``ttl_s`` while ``job_id`` holds it (or take it when free and ``take_if_free``).

    The running training's heartbeat: False when another training holds the lock (or, without
    ``take_if_free``, when nobody does any more).
    """
    held = connection.eval(_HOLD, 1, TRAINING_LOCK_KEY, job_id, str(int(ttl_s)), "1" if take_if_free else "0")
    return bool(held)


@dataclass(frozen=True, slots=True)
class TrainingCancel:
    """An admin's ``/retrain cancel`` of training ``job_id``: its worker stops at the training's next step."""

    job_id: str
    user: str

    @staticmethod
    def key_for(job_id: str) -> str:
        return f"{TRAINING_CANCEL_KEY_PREFIX}{job_id}"

    def encode(self) -> str:
        return self.user

    @classmethod
    def decode(cls, job_id: str, raw: bytes | str) -> TrainingCancel:
        return cls(job_id=job_id, user=as_str(raw))


def request_training_cancel(connection: Redis, cancel: TrainingCancel) -> None:
    connection.set(TrainingCancel.key_for(cancel.job_id), cancel.encode(), ex=TRAINING_PROGRESS_TTL_S)


def training_cancel(connection: Redis, job_id: str) -> TrainingCancel | None:
    """Who asked to cancel training ``job_id``, or None."""
    raw: Any = connection.get(TrainingCancel.key_for(job_id))
    return None if raw is None else TrainingCancel.decode(job_id, raw)


@dataclass(frozen=True, slots=True)
class TrainingProgress:
    """The latest progress of the training in hand, as ``/retrain status`` and the bot show it."""

    job_id: str
    phase: str
    channel: str = ""
    ts: str = ""  # the progress message in Slack
    step: int = 0
    total_steps: int = 0
    epoch: float | None = None
    elapsed_s: float | None = None
    eta_s: float | None = None
    accuracy: float | None = None
    macro_f1: float | None = None
    message: str = ""
    updated_at: float = 0.0

    def encode(self) -> dict[str, str]:
        return {
            "job_id": self.job_id,
            "phase": self.phase,
            "channel": self.channel,
            "ts": self.ts,
            "step": str(self.step),
            "total_steps": str(self.total_steps),
            "epoch": _fmt(self.epoch, 4),
            "elapsed_s": _fmt(self.elapsed_s, 1),
            "eta_s": _fmt(self.eta_s, 1),
            "accuracy": _fmt(self.accuracy, 4),
            "macro_f1": _fmt(self.macro_f1, 4),
            "message": self.message,
            "updated_at": f"{self.updated_at:.3f}",
        }

    @classmethod
    def decode(cls, raw: Mapping[Any, Any]) -> TrainingProgress:
        fields = _fields(raw)
        return cls(
            job_id=fields.get("job_id", ""),
            phase=fields.get("phase", ""),
            channel=fields.get("channel", ""),
            ts=fields.get("ts", ""),
            step=int(fields.get("step") or 0),
            total_steps=int(fields.get("total_steps") or 0),
            epoch=_float(fields.get("epoch", "")),
            elapsed_s=_float(fields.get("elapsed_s", "")),
            eta_s=_float(fields.get("eta_s", "")),
            accuracy=_float(fields.get("accuracy", "")),
            macro_f1=_float(fields.get("macro_f1", "")),
            message=fields.get("message", ""),
            updated_at=float(fields.get("updated_at") or 0.0),
        )


def put_training_progress(connection: Redis, progress: TrainingProgress, *, ended: bool = False) -> None:
    """Publish ``progress`` (stamped now); once the training ``ended`` it is kept TRAINING_PROGRESS_TTL_S more."""
    mapping = {**progress.encode(), "updated_at": f"{time.time():.3f}"}
    with connection.pipeline() as pipe:
        pipe.hset(TRAINING_PROGRESS_KEY, mapping=mapping)  # type: ignore[arg-type]
        if ended:
            pipe.expire(TRAINING_PROGRESS_KEY, TRAINING_PROGRESS_TTL_S)
        else:  # the hash of an earlier training had a TTL: this one must not vanish mid-training
            pipe.persist(TRAINING_PROGRESS_KEY)
        pipe.execute()


def training_progress(connection: Redis) -> TrainingProgress | None:
    raw: dict[Any, Any] = connection.hgetall(TRAINING_PROGRESS_KEY)
    return TrainingProgress.decode(raw) if raw else None


# --- what each worker serves --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """A model version as the App Home shows it: what it is, when it was trained, its test figures."""

    version: str
    model_type: str = ""
    trained_at: str = ""  # ISO time of training.json's created_at
    accuracy: float | None = None  # on the test split (metrics.json)
    macro_f1: float | None = None
    labels: tuple[str, ...] = ()  # in label-id order
    label_names: Mapping[str, Mapping[str, str]] = field(default_factory=dict, hash=False)  # {label: {ja, en}}

    @property
    def label_set(self) -> LabelSet | None:
        """The labels with their display names; None when not known (or not a usable set)."""
        return _label_set(self.labels, self.label_names)


def _label_set(labels: tuple[str, ...], names: Mapping[str, Mapping[str, str]]) -> LabelSet | None:
    """The set, with livedoor's names for livedoor's nine slugs published without names (as a model folder
    without labels.json gets them, and as workers of earlier releases published them)."""
    if not names and labels == LIVEDOOR.labels:
        return LIVEDOOR
    try:
        return LabelSet(labels, names)
    except LabelSetError:
        try:
            return LabelSet(labels)
        except LabelSetError:
            return None


@dataclass(frozen=True, slots=True)
class ServingState:
    """What one worker serves now, published by its model watcher for ``/retrain status`` and the App Home.

    Besides the version, the served model's facts (from its metrics.json and training.json, read by the
    worker: the bot never reads MODEL_DIR) and ``versions``, the registry's latest versions as the worker
    last listed them (newest first, each with a one-line summary), which admins may promote from the Home.
    """

    worker: str
    version: str = ""
    path: str = ""
    loaded_at: str = ""
    last_error: str = ""
    device: str = ""
    model_type: str = ""
    trained_at: str = ""
    accuracy: float | None = None
    macro_f1: float | None = None
    labels: tuple[str, ...] = ()
    versions: tuple[tuple[str, str], ...] = ()
    label_names: Mapping[str, Mapping[str, str]] = field(default_factory=dict, hash=False)

    @property
    def model(self) -> ModelFacts | None:
        """The served model's facts, or None while this worker serves none."""
        if not self.version:
            return None
        return ModelFacts(
            self.version,
            self.model_type,
            self.trained_at,
            self.accuracy,
            self.macro_f1,
            self.labels,
            {label: dict(names) for label, names in self.label_names.items()},
        )

    @staticmethod
    def key_for(worker: str) -> str:
        return f"{SERVING_KEY_PREFIX}{worker}"

    def encode(self) -> dict[str, str]:
        return {
            "version": self.version,
            "path": self.path,
            "loaded_at": self.loaded_at,
            "last_error": self.last_error,
            "device": self.device,
            "model_type": self.model_type,
            "trained_at": self.trained_at,
            "accuracy": _fmt(self.accuracy, 4),
            "macro_f1": _fmt(self.macro_f1, 4),
            "labels": json.dumps(list(self.labels), ensure_ascii=False),
            "label_names": json.dumps({k: dict(v) for k, v in self.label_names.items()}, ensure_ascii=False),
            "versions": json.dumps([list(v) for v in self.versions], ensure_ascii=False),
        }

    @classmethod
    def decode(cls, worker: str, raw: Mapping[Any, Any]) -> ServingState:
        fields = _fields(raw)
        try:
            versions = tuple((str(v), str(s)) for v, s in json.loads(fields.get("versions") or "[]"))
        except (ValueError, TypeError):
            versions = ()
        return cls(
            worker=worker,
            version=fields.get("version", ""),
            path=fields.get("path", ""),
            loaded_at=fields.get("loaded_at", ""),
            last_error=fields.get("last_error", ""),
            device=fields.get("device", ""),
            model_type=fields.get("model_type", ""),
            trained_at=fields.get("trained_at", ""),
            accuracy=_float(fields.get("accuracy", "")),
            macro_f1=_float(fields.get("macro_f1", "")),
            labels=_decode_label_list(fields.get("labels", "")),
            versions=versions,
            label_names=_decode_label_names(fields.get("label_names", "")),
        )


def _decode_label_list(raw: str) -> tuple[str, ...]:
    """A JSON list of labels (a label may hold a comma); comma-separated as earlier releases published them."""
    if raw.startswith("["):
        try:
            return tuple(str(label) for label in json.loads(raw))
        except (ValueError, TypeError):
            return ()
    return tuple(label for label in raw.split(",") if label)


def _decode_label_names(raw: str) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): {str(lang): str(n) for lang, n in v.items()} for k, v in data.items() if isinstance(v, dict)}


def publish_serving_state(connection: Redis, state: ServingState, poll_interval_s: float) -> None:
    key = ServingState.key_for(state.worker)
    with connection.pipeline() as pipe:
        pipe.hset(key, mapping=state.encode())  # type: ignore[arg-type]
        pipe.expire(key, serving_ttl_s(poll_interval_s))
        pipe.execute()


def clear_serving_state(connection: Redis, worker: str) -> None:
    connection.delete(ServingState.key_for(worker))


def serving_states(connection: Redis) -> list[ServingState]:
    """Every live worker's serving state, by worker name."""
    states = []
    for key in sorted(as_str(k) for k in connection.scan_iter(match=f"{SERVING_KEY_PREFIX}*")):
        raw: dict[Any, Any] = connection.hgetall(key)
        if raw:
            states.append(ServingState.decode(key.removeprefix(SERVING_KEY_PREFIX), raw))
    return states


# --- the newsroom workflow: watched channels and routes to desks -------------------------------------


class _Settings(Generic[R]):
    """An admin's settings kept as one Redis hash (no TTL): field → JSON record, listed in field order."""

    def __init__(self, key: str, decode: Callable[[str, bytes | str], R]) -> None:
        self.key = key
        self.decode = decode

    def put(self, connection: Redis, field_name: str, encoded: str) -> None:
        connection.hset(self.key, field_name, encoded)

    def remove(self, connection: Redis, field_name: str) -> bool:
        return bool(connection.hdel(self.key, field_name))

    def get(self, connection: Redis, field_name: str) -> R | None:
        raw: Any = connection.hget(self.key, field_name)
        return None if raw is None else self.decode(field_name, raw)

    def all(self, connection: Redis) -> list[R]:
        raw: dict[Any, Any] = connection.hgetall(self.key)
        return [self.decode(name, raw_value) for name, raw_value in sorted((as_str(k), v) for k, v in raw.items())]


@dataclass(frozen=True, slots=True)
class Watch:
    """A channel whose new articles are classified without being asked, turned on by an admin."""

    channel: str
    by: str
    at: float

    def encode(self) -> str:
        return json.dumps({"by": self.by, "at": self.at})

    @classmethod
    def decode(cls, channel: str, raw: bytes | str) -> Watch:
        data = json.loads(as_str(raw))
        return cls(channel=channel, by=str(data.get("by", "")), at=float(data.get("at", 0.0)))


_WATCHES = _Settings(WATCH_KEY, Watch.decode)


def put_watch(connection: Redis, watch: Watch) -> None:
    _WATCHES.put(connection, watch.channel, watch.encode())


def remove_watch(connection: Redis, channel: str) -> bool:
    """Stop watching ``channel``; False when it was not watched."""
    return _WATCHES.remove(connection, channel)


def watch_of(connection: Redis, channel: str) -> Watch | None:
    return _WATCHES.get(connection, channel)


def watches(connection: Redis) -> list[Watch]:
    """Every watched channel, in channel-id order."""
    return _WATCHES.all(connection)


@dataclass(frozen=True, slots=True)
class Route:
    """Confident articles of ``label`` are cross-posted to ``channel`` (a desk), as set by admin ``by``."""

    label: str
    channel: str
    by: str
    at: float
    warned: bool = False  # the admin was told once that the bot is not in the desk channel

    def encode(self) -> str:
        return json.dumps({"channel": self.channel, "by": self.by, "at": self.at, "warned": self.warned})

    @classmethod
    def decode(cls, label: str, raw: bytes | str) -> Route:
        data = json.loads(as_str(raw))
        return cls(
            label=label,
            channel=str(data["channel"]),
            by=str(data.get("by", "")),
            at=float(data.get("at", 0.0)),
            warned=bool(data.get("warned", False)),
        )


_ROUTES = _Settings(ROUTES_KEY, Route.decode)


def put_route(connection: Redis, route: Route) -> None:
    _ROUTES.put(connection, route.label, route.encode())


def remove_route(connection: Redis, label: str) -> bool:
    """Clear the route of ``label``; False when it had none."""
    return _ROUTES.remove(connection, label)


def route_of(connection: Redis, label: str) -> Route | None:
    return _ROUTES.get(connection, label)


def routes(connection: Redis) -> list[Route]:
    """Every route, in label order."""
    return _ROUTES.all(connection)


# --- the App Home: activity counters, each user's recent classifications, who looks at the Home ---------

CLASSIFIED_DAY_KEY_PREFIX = "newsbot:stats:classified:"
FEEDBACK_CORRECT_KEY = "newsbot:stats:feedback:correct"
FEEDBACK_WRONG_KEY = "newsbot:stats:feedback:wrong"
CORRECTIONS_CUTOFF_KEY = "newsbot:training:corrections_cutoff"
RECENT_KEY_PREFIX = "newsbot:recent:"
HOME_VIEWERS_KEY = "newsbot:home:viewers"
HOME_VIEWER_KEY_PREFIX = "newsbot:home:viewer:"

# A day's set of classified record ids outlives the 7 days that "this week" adds up.
CLASSIFIED_DAY_TTL_S = 8 * 24 * 3600
# Each user's last few classifications, shown on their Home; forgotten after a month without one.
RECENT_PER_USER = 5
RECENT_TTL_S = 30 * 24 * 3600
# Who opened the Home within this long has it republished when the model changes (the newest ones, at most).
HOME_VIEWER_TTL_S = 24 * 3600
HOME_REFRESH_MAX_VIEWERS = 50
WEEK_DAYS = 7


def newsroom_day(at: float, tz: tzinfo) -> str:
    """The calendar day (``YYYY-MM-DD``) in the newsroom's time zone at ``at``."""
    return datetime.fromtimestamp(at, tz).date().isoformat()


def classified_day_key(day: str) -> str:
    return f"{CLASSIFIED_DAY_KEY_PREFIX}{day}"


def recent_key(user: str) -> str:
    return f"{RECENT_KEY_PREFIX}{user}"


def count_classifications(
    connection: Redis, record_ids: list[str], user: str | None, *, tz: tzinfo, at: float | None = None
) -> None:
    """Count stored records for today in ``tz`` (a set: a retried job counts once) and remember them as ``user``'s
    recent."""
    if not record_ids:
        return
    now = time.time() if at is None else at
    day = classified_day_key(newsroom_day(now, tz))
    with connection.pipeline() as pipe:
        pipe.sadd(day, *record_ids)
        pipe.expire(day, CLASSIFIED_DAY_TTL_S)
        if user:
            key = recent_key(user)
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
            pipe.scard(classified_day_key((today - timedelta(days=back)).isoformat()))
        counts = [int(n) for n in pipe.execute()]
    return counts[0], sum(counts)


def _count_feedback(pipe: Any, answer: FeedbackAnswer) -> None:
    """Within put_feedback's transaction: the answer counts as correct or wrong, never both (a change moves it)."""
    member = f"{answer.user}:{answer.record_id}"
    if answer.correct:
        pipe.sadd(FEEDBACK_CORRECT_KEY, member)
        pipe.zrem(FEEDBACK_WRONG_KEY, member)
    else:
        pipe.zadd(FEEDBACK_WRONG_KEY, {member: answer.at})
        pipe.srem(FEEDBACK_CORRECT_KEY, member)


def mark_corrections_exported(connection: Redis, at: float) -> None:
    """A training took the corrections as they were at ``at``: later ones wait for the next training."""
    connection.set(CORRECTIONS_CUTOFF_KEY, f"{at:.3f}")


@dataclass(frozen=True, slots=True)
class FeedbackTally:
    """Every user's latest answer counted once: correct, wrong, and wrong ones newer than the last training."""

    correct: int
    wrong: int
    waiting: int


def feedback_tally(connection: Redis) -> FeedbackTally:
    cutoff_raw: Any = connection.get(CORRECTIONS_CUTOFF_KEY)
    low = f"({as_str(cutoff_raw)}" if cutoff_raw else "-inf"
    with connection.pipeline() as pipe:
        pipe.scard(FEEDBACK_CORRECT_KEY)
        pipe.zcard(FEEDBACK_WRONG_KEY)
        pipe.zcount(FEEDBACK_WRONG_KEY, low, "+inf")
        correct, wrong, waiting = (int(n) for n in pipe.execute())
    return FeedbackTally(correct=correct, wrong=wrong, waiting=waiting)


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
    raw: Any = connection.zrevrange(recent_key(user), 0, RECENT_PER_USER - 1, withscores=True)
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

    user: str
    channel: str
    admin: bool
    at: float

    @staticmethod
    def key_for(user: str) -> str:
        return f"{HOME_VIEWER_KEY_PREFIX}{user}"

    def encode(self) -> str:
        return json.dumps({"channel": self.channel, "admin": self.admin, "at": self.at})

    @classmethod
    def decode(cls, user: str, raw: bytes | str) -> HomeViewer:
        data = json.loads(as_str(raw))
        return cls(user, str(data.get("channel", "")), bool(data.get("admin")), float(data.get("at", 0.0)))


def note_home_viewer(connection: Redis, viewer: HomeViewer) -> None:
    """Remember that ``viewer`` opened the Home now; viewers older than HOME_VIEWER_TTL_S are dropped."""
    with connection.pipeline() as pipe:
        pipe.set(HomeViewer.key_for(viewer.user), viewer.encode(), ex=HOME_VIEWER_TTL_S)
        pipe.zadd(HOME_VIEWERS_KEY, {viewer.user: viewer.at})
        pipe.zremrangebyscore(HOME_VIEWERS_KEY, "-inf", f"({viewer.at - HOME_VIEWER_TTL_S}")
        pipe.expire(HOME_VIEWERS_KEY, HOME_VIEWER_TTL_S)
        pipe.execute()


def home_viewer(connection: Redis, user: str) -> HomeViewer | None:
    raw: Any = connection.get(HomeViewer.key_for(user))
    return None if raw is None else HomeViewer.decode(user, raw)


def home_viewers(connection: Redis, limit: int = HOME_REFRESH_MAX_VIEWERS, at: float | None = None) -> list[HomeViewer]:
    """Who opened the Home within HOME_VIEWER_TTL_S, most recent first, at most ``limit``."""
    now = time.time() if at is None else at
    users: list[Any] = connection.zrevrangebyscore(
        HOME_VIEWERS_KEY, "+inf", now - HOME_VIEWER_TTL_S, start=0, num=limit
    )
    if not users:
        return []
    names = [as_str(u) for u in users]
    raws: list[Any] = connection.mget([HomeViewer.key_for(u) for u in names])
    return [HomeViewer.decode(u, raw) for u, raw in zip(names, raws, strict=True) if raw is not None]
