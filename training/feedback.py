"""``python -m training feedback export``: the answers people gave in Slack, as a dataset to review and train on.

Every classification someone answered (a correction, or the prediction confirmed) becomes one JSON line in the
format :mod:`training.dataset` reads (``{"title", "text", "label"}``, plus columns it ignores: ``feedback``,
``predicted``, ``votes``, ``model_version``, ``record_id``, ``reviews``: held and rejected corrections are here
too, with their review state); see
:meth:`store.feedback.FeedbackStore.export_dataset`. The answers are in Redis (REDIS_URL): this is the one part
of training that talks to it, and it is imported only for this subcommand.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO

from redis import Redis
from redis.exceptions import RedisError

from common.exceptions import NewsbotError
from common.settings import Settings
from store.feedback import DatasetSummary, FeedbackStore
from store.queues import redis_connection


def export_feedback(settings: Settings, out: IO[str], path: Path | None = None) -> DatasetSummary:
    """Write the feedback dataset to ``path`` (replaced whole, atomically) or, without one, to ``out``; a
    :class:`NewsbotError` when Redis cannot be read."""
    connection = redis_connection(settings)
    try:
        return _export(connection, out, path)
    except RedisError as exc:
        raise NewsbotError(f"cannot read the feedback from REDIS_URL: {exc}") from exc
    finally:
        connection.close()


def _export(connection: Redis, out: IO[str], path: Path | None) -> DatasetSummary:
    store = FeedbackStore(connection)
    if path is None:
        return store.export_dataset(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            summary = store.export_dataset(file, path)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return summary
