"""Job payloads that cross the queue between the bot and the workers.

The bot enqueues jobs by dotted path (it never imports the worker), with a JSON payload built from
these dataclasses; the worker rebuilds them with ``from_dict``. Payloads are plain JSON so that no
process ever unpickles data from Redis.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

CLASSIFY_QUEUE = "classify"
TRAIN_QUEUE = "train"

# Dotted paths of the job functions, resolved by the worker process.
CLASSIFY_JOB = "worker.jobs.classify"

Source = Literal["mention", "command", "shortcut"]


def job_id_for(kind: str, delivery_key: str) -> str:
    """A stable RQ job id derived from Slack's own id for a delivery (``event_id``, trigger id, …).

    A retried delivery of the same event maps to the same job id, which is how duplicates are refused.
    """
    digest = hashlib.sha256(delivery_key.encode("utf-8")).hexdigest()[:24]
    return f"{kind}-{digest}"


@dataclass(frozen=True, slots=True)
class ClassifyRequest:
    """Classify one Slack message (pasted article text and/or links) and reply where it came from."""

    request_id: str
    text: str
    channel: str
    user: str | None = None
    thread_ts: str | None = None
    response_url: str | None = None
    source: Source = "mention"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassifyRequest:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True, slots=True)
class ClassifyResult:
    """What a classify job stores as its RQ result, readable back by job id."""

    slug: str
    ja: str
    en: str
    confidence: float
    scores: dict[str, float]
    model_version: str
    title: str | None = None
    url: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
