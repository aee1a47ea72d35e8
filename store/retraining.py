"""The one training at a time: its lock, an admin's cancel request, its progress, and the corrections cutoff."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from redis import Redis

from store.record import Key, as_str, fixed, float_or_none, str_fields

# The progress hash is kept this long after the training ends, for /retrain status.
TRAINING_PROGRESS_TTL_S = 24 * 3600
# A queued training's lock outlives the training job's own timeout by this margin, in case nothing releases it.
TRAINING_LOCK_MARGIN_S = 3600
# Once the training runs, its worker holds the lock with the TRAINING_LOCK_TTL_S setting (default 60 s) and renews
# it every third of that: a worker killed with SIGKILL leaves a lock that lapses within that TTL.
TRAINING_LOCK_RENEWALS_PER_TTL = 3

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

    KEY: ClassVar[Key] = Key(
        "newsbot:training:lock",
        "job id (TrainingLock)",
        "queued: job timeout + TRAINING_LOCK_MARGIN_S; running: TRAINING_LOCK_TTL_S (setting), renewed",
    )

    job_id: str

    @classmethod
    def key_for(cls) -> str:
        return cls.KEY.key_for()

    def encode(self) -> str:
        return self.job_id

    @classmethod
    def decode(cls, raw: bytes | str) -> TrainingLock:
        return cls(job_id=as_str(raw))


def acquire_training_lock(connection: Redis, job_id: str, job_timeout_s: int) -> bool:
    """Take the lock for ``job_id`` unless another training holds it (SET NX, TTL = timeout + margin)."""
    lock = TrainingLock(job_id)
    key = TrainingLock.key_for()
    return bool(connection.set(key, lock.encode(), nx=True, ex=job_timeout_s + TRAINING_LOCK_MARGIN_S))


def training_lock(connection: Redis) -> TrainingLock | None:
    """The lock as it is now, or None when no training holds it."""
    raw: Any = connection.get(TrainingLock.key_for())
    return TrainingLock.decode(raw) if raw else None


def release_training_lock(connection: Redis, job_id: str) -> bool:
    """Release the lock if ``job_id`` still holds it (atomically); True when it was released."""
    released = connection.eval(_RELEASE_IF_HELD, 1, TrainingLock.key_for(), job_id)
    return bool(released)


def hold_training_lock(connection: Redis, job_id: str, ttl_s: int, *, take_if_free: bool = False) -> bool:
    """Set the lock's TTL to ``ttl_s`` while ``job_id`` holds it (or take it when free and ``take_if_free``).

    The running training's heartbeat: False when another training holds the lock (or, without
    ``take_if_free``, when nobody does any more).
    """
    held = connection.eval(_HOLD, 1, TrainingLock.key_for(), job_id, str(int(ttl_s)), "1" if take_if_free else "0")
    return bool(held)


@dataclass(frozen=True, slots=True)
class TrainingCancel:
    """An admin's ``/retrain cancel`` of training ``job_id``: its worker stops at the training's next step."""

    KEY: ClassVar[Key] = Key(
        "newsbot:training:cancel:{job_id}",
        "user id (TrainingCancel)",
        "TRAINING_PROGRESS_TTL_S",
        TRAINING_PROGRESS_TTL_S,
    )

    job_id: str
    user: str

    @classmethod
    def key_for(cls, job_id: str) -> str:
        return cls.KEY.key_for(job_id)

    def encode(self) -> str:
        return self.user

    @classmethod
    def decode(cls, job_id: str, raw: bytes | str) -> TrainingCancel:
        return cls(job_id=job_id, user=as_str(raw))


def request_training_cancel(connection: Redis, cancel: TrainingCancel) -> None:
    connection.set(TrainingCancel.key_for(cancel.job_id), cancel.encode(), ex=TrainingCancel.KEY.ttl_s)


def training_cancel(connection: Redis, job_id: str) -> TrainingCancel | None:
    """Who asked to cancel training ``job_id``, or None."""
    raw: Any = connection.get(TrainingCancel.key_for(job_id))
    return None if raw is None else TrainingCancel.decode(job_id, raw)


@dataclass(frozen=True, slots=True)
class TrainingProgress:
    """The latest progress of the training in hand, as ``/retrain status`` and the bot show it."""

    KEY: ClassVar[Key] = Key(
        "newsbot:training:progress", "hash, TrainingProgress", "TRAINING_PROGRESS_TTL_S once the training ends"
    )

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

    @classmethod
    def key_for(cls) -> str:
        return cls.KEY.key_for()

    def encode(self) -> dict[str, str]:
        return {
            "job_id": self.job_id,
            "phase": self.phase,
            "channel": self.channel,
            "ts": self.ts,
            "step": str(self.step),
            "total_steps": str(self.total_steps),
            "epoch": fixed(self.epoch, 4),
            "elapsed_s": fixed(self.elapsed_s, 1),
            "eta_s": fixed(self.eta_s, 1),
            "accuracy": fixed(self.accuracy, 4),
            "macro_f1": fixed(self.macro_f1, 4),
            "message": self.message,
            "updated_at": f"{self.updated_at:.3f}",
        }

    @classmethod
    def decode(cls, raw: Mapping[Any, Any]) -> TrainingProgress:
        fields = str_fields(raw)
        return cls(
            job_id=fields.get("job_id", ""),
            phase=fields.get("phase", ""),
            channel=fields.get("channel", ""),
            ts=fields.get("ts", ""),
            step=int(fields.get("step") or 0),
            total_steps=int(fields.get("total_steps") or 0),
            epoch=float_or_none(fields.get("epoch", "")),
            elapsed_s=float_or_none(fields.get("elapsed_s", "")),
            eta_s=float_or_none(fields.get("eta_s", "")),
            accuracy=float_or_none(fields.get("accuracy", "")),
            macro_f1=float_or_none(fields.get("macro_f1", "")),
            message=fields.get("message", ""),
            updated_at=float(fields.get("updated_at") or 0.0),
        )


def put_training_progress(connection: Redis, progress: TrainingProgress, *, ended: bool = False) -> None:
    """Publish ``progress`` (stamped now); once the training ``ended`` it is kept TRAINING_PROGRESS_TTL_S more."""
    key = TrainingProgress.key_for()
    mapping = {**progress.encode(), "updated_at": f"{time.time():.3f}"}
    with connection.pipeline() as pipe:
        pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
        if ended:
            pipe.expire(key, TRAINING_PROGRESS_TTL_S)
        else:  # the hash of an earlier training had a TTL: this one must not vanish mid-training
            pipe.persist(key)
        pipe.execute()


def training_progress(connection: Redis) -> TrainingProgress | None:
    raw: dict[Any, Any] = connection.hgetall(TrainingProgress.key_for())
    return TrainingProgress.decode(raw) if raw else None


# When the last training exported the corrections: answers after it wait for the next (the App Home counts them).
CORRECTIONS_CUTOFF = Key("newsbot:training:corrections_cutoff", "time of the last export", "no TTL")


def mark_corrections_exported(connection: Redis, at: float) -> None:
    """A training took the corrections as they were at ``at``: later ones wait for the next training."""
    connection.set(CORRECTIONS_CUTOFF.key_for(), f"{at:.3f}")
