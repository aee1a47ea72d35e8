"""Job payloads that cross the queue between the bot and the workers.

The bot enqueues jobs by dotted path (it never imports the worker), with a JSON payload built from
these dataclasses; the worker rebuilds them with ``from_dict``. Payloads are plain JSON so that no
process ever unpickles data from Redis.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal, Self

from common.kinds import ModelKind

CLASSIFY_QUEUE = "classify"
TRAIN_QUEUE = "train"

# Dotted paths of the job functions, resolved by the worker process (the bot never imports them).
CLASSIFY_JOB = "worker.jobs.classify"  # queue: classify
RETRAIN_JOB = "worker.retrain.retrain"  # queue: train
# RQ failure callback of a training job: says in Slack that a training whose worker died was lost.
RETRAIN_LOST_CALLBACK = "worker.retrain.training_lost"
STATUS_JOB = "worker.admin.status"  # queue: classify (quick; must not be batched with classify jobs)
ROLLBACK_JOB = "worker.admin.rollback"  # queue: classify
ROUTE_JOB = "worker.routes.set_route"  # queue: classify (quick: checks the desk channel, stores the route)
CHANNEL_JOB = "worker.lifecycle.channel_changed"  # queue: classify (quick: a watched or desk channel's event)


# Where a classify request came from. ``watch``: a new message in a watched channel (answered with a reaction,
# see WATCH_REPLY, and cross-posted to its desk); ``dm``: a message in the bot's Messages tab (answered there);
# ``thread``: an empty mention inside a thread, which classifies the thread's parent message (``thread_ts``),
# read by the worker with conversations.replies.
Source = Literal["mention", "command", "shortcut", "watch", "dm", "thread"]


def job_id_for(kind: str, delivery_key: str) -> str:
    """A stable RQ job id derived from Slack's own id for a delivery (``event_id``, trigger id, …).

    A retried delivery of the same event maps to the same job id, which is how duplicates are refused.
    """
    digest = hashlib.sha256(delivery_key.encode("utf-8")).hexdigest()[:24]
    return f"{kind}-{digest}"


class Payload:
    """JSON round trip shared by the job payload dataclasses below (unknown keys are ignored on the way in)."""

    __slots__ = ()
    __dataclass_fields__: ClassVar[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True, slots=True)
class ClassifyRequest(Payload):
    """Classify one Slack message (pasted article text and/or links) and reply where it came from."""

    request_id: str
    text: str
    channel: str
    user: str | None = None
    thread_ts: str | None = None
    response_url: str | None = None
    # For /classify-news (delivered through response_url): "in_channel" or "ephemeral".
    response_type: str = "in_channel"
    source: Source = "mention"
    # The message shortcut's response_url: the answer goes there, ephemeral to the user, when chat.postMessage
    # cannot reach the channel (the bot is not in it).
    fallback_url: str | None = None


@dataclass(frozen=True, slots=True)
class RetrainRequest(Payload):
    """An admin's /retrain: options already validated by the bot, progress shown in ``channel``."""

    request_id: str
    user: str
    channel: str
    response_url: str | None = None
    model_type: ModelKind = "bert"
    base_model: str | None = None
    epochs: float | None = None
    force: bool = False


# --- /retrain and the admin jobs (the training lock and progress live in store.retraining) -------------


@dataclass(frozen=True, slots=True)
class AdminRequest(Payload):
    """``/retrain status`` or ``/retrain rollback [version]``: answered through ``response_url``."""

    request_id: str
    user: str
    channel: str
    response_url: str | None = None
    version: str | None = None


@dataclass(frozen=True, slots=True)
class RouteRequest(Payload):
    """An admin's ``/classify-news route <label> #channel``: the worker checks the channel, then stores the route."""

    request_id: str
    user: str
    channel: str  # where the command was run
    label: str
    desk: str  # the desk channel's id
    response_url: str | None = None
    # ``route <label> #channel allow-wider``: cross-post articles of channels with a narrower audience too.
    allow_wider: bool = False


# What happened to a channel (a lifecycle event): ``archived``, ``deleted``, ``removed`` (the bot was removed from
# it), ``audience`` (shared, unshared, made private or public: its audience is checked again).
ChannelChange = Literal["archived", "deleted", "removed", "audience"]


@dataclass(frozen=True, slots=True)
class ChannelEvent(Payload):
    """A channel's lifecycle event, for the watches and routes of that channel (``worker.lifecycle``)."""

    request_id: str
    channel: str
    change: ChannelChange
    event: str = ""  # Slack's event type (or message subtype), for the log
