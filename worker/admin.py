"""``/retrain status`` and ``/retrain rollback [version]``, run by a classify worker (it has the model volume).

Both answer through the command's ``response_url`` (ephemeral, to the admin who asked), in the words of
:mod:`ui.admin`. The bot has already checked that the user is an admin before enqueueing.
"""

from __future__ import annotations

import logging
from typing import Any
from zoneinfo import ZoneInfo

from redis import Redis
from slack_sdk.webhook import WebhookClient

from common.exceptions import NewsbotError
from common.jobs import AdminRequest
from common.settings import Settings
from newsmodel.registry import current_version, list_versions
from newsmodel.registry import rollback as registry_rollback
from store import live, retraining, serving
from ui import admin as words
from ui.reports import drift_warning, labels_line, live_line, metric, metrics_line, version_line
from worker.homes import publish_homes_after_model_change
from worker.jobs import in_job_context, runtime

log = logging.getLogger(__name__)

# How many of the latest versions the status lists.
LISTED_VERSIONS = 5


def answer(request: AdminRequest, text: str) -> None:
    """Tell the admin who asked: through ``response_url``, else an ephemeral message in the channel."""
    if request.response_url:
        response = WebhookClient(request.response_url, timeout=15).send(text=text, response_type="ephemeral")
        if response.status_code == 200:
            return
        log.warning("response_url answered %s; falling back to chat.postEphemeral", response.status_code)
    runtime().replier.client.chat_postEphemeral(channel=request.channel, user=request.user, text=text)


def training_lines(connection: Redis) -> list[str]:
    lock = retraining.training_lock(connection)
    return words.training_lines(
        lock.job_id if lock else None, retraining.training_progress(connection) if lock else None
    )


def status_text(settings: Settings, connection: Redis) -> str:
    versions = list_versions(settings.model_dir)
    current = next((v for v in versions if v.is_current), None)
    model: list[str] = []
    if settings.model_path is not None:
        model.append(words.pinned_model(str(settings.model_path)))
    elif current is not None:
        model.append(version_line(current.version, current.created_at, current.model_type, current.metrics))
        if current.labels is not None:
            model.append(labels_line(current.labels))
        model.extend(live_lines(connection, current.version, current.metrics, settings.newsroom_timezone))
    else:
        model.append(words.unregistered_model(current_version(settings.model_dir)))
    listed = []
    for info in versions[-LISTED_VERSIONS:][::-1]:
        mark = " ← current" if info.is_current else ""
        count = f", {info.label_count} labels" if info.label_count else ""
        line = version_line(info.version, info.created_at, info.model_type, info.metrics)
        listed.append(f"• {line}{count}{mark}")
    servings = serving.serving_states(connection)
    return words.status_text(model, servings, training_lines(connection), listed, LISTED_VERSIONS)


def live_lines(connection: Redis, version: str, metrics: dict[str, Any] | None, timezone: str) -> list[str]:
    """The current version's live figures of the last 7 days (:mod:`store.live`), and the drift warning when its
    live accuracy is clearly below its test accuracy."""
    figures = live.live_figures(connection, version, tz=ZoneInfo(timezone))
    warning = drift_warning(figures, metric(metrics, "accuracy"))
    return [live_line(figures), *([warning] if warning else [])]


@in_job_context
def status(payload: dict[str, Any]) -> dict[str, Any]:
    rt = runtime()
    request = AdminRequest.from_dict(payload)
    text = status_text(rt.settings, rt.connection)
    answer(request, text)
    return {"text": text}


@in_job_context
def rollback(payload: dict[str, Any]) -> dict[str, Any]:
    """Make the requested (or the previous) version current; every worker hot-reloads it."""
    rt = runtime()
    request = AdminRequest.from_dict(payload)
    before = current_version(rt.settings.model_dir)
    try:
        now = registry_rollback(rt.settings.model_dir, request.version)
    except NewsbotError as exc:
        log.info("rollback to %s refused: %s", request.version, exc)
        answer(request, words.rollback_refused(str(exc), exc.user_message))
        return {"error": type(exc).__name__, "message": str(exc)}
    log.info("%s made %s current (was %s)", request.user, now, before)
    metrics = next((v.metrics for v in list_versions(rt.settings.model_dir) if v.version == now), None)
    text = words.rollback_done(now, before, metrics_line(metrics))
    answer(request, text)
    publish_homes_after_model_change(rt)
    return {"version": now, "previous": before}
