"""``/retrain status`` and ``/retrain rollback [version]``, run by a classify worker (it has the model volume).

Both answer through the command's ``response_url`` (ephemeral, to the admin who asked). The bot has already
checked that the user is an admin before enqueueing.
"""

from __future__ import annotations

import logging
from typing import Any

from redis import Redis
from slack_sdk.webhook import WebhookClient

from common.exceptions import NewsbotError
from common.jobs import AdminRequest
from common.mrkdwn import escape
from common.progress import progress_line
from common.settings import Settings
from newsmodel.registry import current_version, list_versions
from newsmodel.registry import rollback as registry_rollback
from store import retraining
from store.serving import serving_states
from worker.homes import publish_homes_after_model_change
from worker.jobs import in_job_context, runtime
from worker.reports import labels_line, metrics_line, version_line

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


def serving_lines(connection: Redis) -> list[str]:
    lines = []
    for serving in serving_states(connection):
        line = f"• `{serving.worker}`: `{serving.version or '—'}` on {serving.device or '?'}"
        if serving.loaded_at:
            line += f", loaded {serving.loaded_at}"
        if serving.last_error:
            line += f"\n    :warning: {escape(serving.last_error)}"
        lines.append(line)
    return lines


def training_lines(connection: Redis) -> list[str]:
    lock = retraining.training_lock(connection)
    if lock is None:
        return ["学習は実行されていません。/ No training in progress."]
    return [progress_line(lock.job_id, retraining.training_progress(connection))]


def status_text(settings: Settings, connection: Redis) -> str:
    versions = list_versions(settings.model_dir)
    current = next((v for v in versions if v.is_current), None)
    lines = ["*現在のモデル / Current model*"]
    if settings.model_path is not None:
        lines.append(f"MODEL_PATH `{escape(str(settings.model_path))}` (固定 / pinned; the registry is not used)")
    elif current is not None:
        lines.append(version_line(current.version, current.created_at, current.model_type, current.metrics))
        if current.labels is not None:
            lines.append(labels_line(current.labels))
    else:
        named = current_version(settings.model_dir)
        lines.append(f"`{escape(named)}` (登録なし / not a registered version)" if named else "なし / none yet")
    lines.append("*ワーカー / Workers*")
    lines.extend(serving_lines(connection) or ["稼働中のワーカー情報なし / no worker has reported yet"])
    lines.append("*学習 / Training*")
    lines.extend(training_lines(connection))
    if versions:
        lines.append(f"*バージョン / Versions* (最新 {LISTED_VERSIONS} / latest {LISTED_VERSIONS})")
        for info in versions[-LISTED_VERSIONS:][::-1]:
            mark = " ← current" if info.is_current else ""
            count = f", {info.label_count} labels" if info.label_count else ""
            line = version_line(info.version, info.created_at, info.model_type, info.metrics)
            lines.append(f"• {line}{count}{mark}")
    return "\n".join(lines)


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
        answer(
            request,
            f":warning: 切り替えできませんでした / Could not switch: {escape(str(exc))}\n{escape(exc.user_message)}",
        )
        return {"error": type(exc).__name__, "message": str(exc)}
    log.info("%s made %s current (was %s)", request.user, now, before)
    metrics = next((v.metrics for v in list_versions(rt.settings.model_dir) if v.version == now), None)
    text = (
        f"現在のモデルを `{now}` にしました (以前: `{before}`)。各ワーカーが数秒で読み込み直します。\n"
        f"`{now}` is now current (was `{before}`); workers reload it within seconds.\n"
        f"{metrics_line(metrics)}"
    )
    answer(request, text)
    publish_homes_after_model_change(rt)
    return {"version": now, "previous": before}
