"""Slash commands: ``/classify-news <text or links>`` (and its admins' newsroom subcommands), ``/retrain``."""

from __future__ import annotations

import logging
import time
from typing import Any

from redis.exceptions import RedisError
from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient

from bot.admins import AdminPolicy
from bot.newsroom import (
    NewsroomCommand,
    WatchCommand,
    no_watch_in_dm,
    parse_newsroom,
    route_checking,
    route_cleared,
    route_labels,
    route_list,
    watch_list,
    watching_off,
    watching_on,
)
from bot.options import CancelCommand, RollbackCommand, StatusCommand, TrainCommand, parse_retrain
from bot.submit import JobSubmitter
from common import metrics
from common.articles import has_article
from common.exceptions import NewsbotError, NotAdminError, RouteRefusedError, TrainingInProgressError
from common.jobs import ROLLBACK_JOB, STATUS_JOB, AdminRequest, ClassifyRequest, RetrainRequest, RouteRequest
from common.progress import progress_line
from common.settings import Settings
from store.newsroom import Watch, put_watch, remove_route, remove_watch, routes, watches

log = logging.getLogger(__name__)

CLASSIFY_USAGE = (
    "使い方: `/classify-news <記事の本文 または リンク>`\nUsage: `/classify-news <article text or a link to it>`"
)
CLASSIFYING = "分類しています… / Classifying…"
QUEUE_DOWN = (
    ":warning: ただいま受け付けできません。少し待ってからもう一度お試しください。\n"
    "We cannot take requests right now; please try again in a moment."
)


def handle_classify_news(
    ack: Ack, command: dict[str, Any], context: BoltContext, respond: Respond, client: WebClient | None = None
) -> None:
    """Ack with a short ephemeral note, then enqueue; the worker answers through the command's response_url.

    ``watch``, ``unwatch``, ``watching`` and ``route …`` are the admins' newsroom subcommands instead.
    """
    text = command.get("text") or ""
    connection = context["submitter"].connection
    try:
        newsroom = parse_newsroom(text.strip(), lambda: route_labels(connection))
    except RouteRefusedError as exc:
        ack(text=exc.user_message, response_type="ephemeral")
        return
    if newsroom is not None:
        handle_newsroom(ack, command, context, client, newsroom)
        return
    if not has_article(text):
        metrics.REQUESTS.labels(kind="command", outcome="usage").inc()
        ack(text=CLASSIFY_USAGE, response_type="ephemeral")
        return
    ack(text=CLASSIFYING, response_type="ephemeral")
    settings: Settings = context["settings"]
    submitter: JobSubmitter = context["submitter"]
    request = ClassifyRequest(
        request_id=command["trigger_id"],
        text=text,
        channel=command["channel_id"],
        user=command.get("user_id"),
        response_url=command.get("response_url"),
        response_type=settings.classify_response_type,
        source="command",
    )
    try:
        submitter.submit_classify(request, delivery_key=f"command:{command['trigger_id']}")
    except RedisError:
        log.exception("could not enqueue /classify-news %s", command["trigger_id"])
        respond(text=QUEUE_DOWN, response_type="ephemeral")


def handle_newsroom(
    ack: Ack, command: dict[str, Any], context: BoltContext, client: WebClient | None, newsroom: NewsroomCommand
) -> None:
    """An admin's watch or route subcommand, checked here on the server; answered in the ack, to the admin alone.

    Setting a route only enqueues it: a worker checks the desk channel (conversations.info, a Slack call kept
    out of the ack) and answers through the command's response_url.
    """
    admins: AdminPolicy = context["admins"]
    submitter: JobSubmitter = context["submitter"]
    connection = submitter.connection
    user = command.get("user_id", "")
    channel = command["channel_id"]
    slack = client if client is not None else context.client
    try:
        if slack is None:  # Bolt hands every listener its client; only a direct call could lack one
            raise NotAdminError("no Slack client to check the user with")
        admins.require(slack, user)
        if isinstance(newsroom, WatchCommand):
            if newsroom.action == "list":
                answer = watch_list(watches(connection))
            elif channel.startswith("D"):
                raise no_watch_in_dm()
            elif newsroom.action == "on":
                put_watch(connection, Watch(channel=channel, by=user, at=time.time()))
                answer = watching_on(channel)
            else:
                answer = watching_off(channel, remove_watch(connection, channel))
        elif newsroom.action == "list":
            answer = route_list(routes(connection))
        elif newsroom.action == "clear":
            answer = route_cleared(newsroom.label, remove_route(connection, newsroom.label))
        else:
            route = RouteRequest(
                request_id=command["trigger_id"],
                user=user,
                channel=channel,
                label=newsroom.label,
                desk=newsroom.desk,
                response_url=command.get("response_url"),
            )
            submitter.submit_route(route, delivery_key=f"command:{command['trigger_id']}")
            answer = route_checking(newsroom.label, newsroom.desk)
    except NewsbotError as exc:
        answer = exc.user_message
    except RedisError:
        log.exception("could not carry out /classify-news %s", command.get("text"))
        answer = QUEUE_DOWN
    ack(text=answer, response_type="ephemeral")


def _queued_text(job_id: str, train: TrainCommand, settings: Settings) -> str:
    epochs = f"{train.epochs:g}" if train.epochs is not None else "default"
    base = train.base_model or settings.base_model
    force = ", force" if train.force else ""
    return (
        f"学習を開始します (`{job_id}`)。進捗はこのチャンネルに表示します。\n"
        f"Training queued (`{job_id}`: type={train.model_type}, base={base}, epochs={epochs}{force}); "
        "its progress will show in this channel."
    )


NOTHING_TO_CANCEL = "実行中の学習はありません。/ No training is queued or running: nothing to cancel."


def _cancel_text(cancelled: tuple[str, bool] | None) -> str:
    if cancelled is None:
        return NOTHING_TO_CANCEL
    job_id, started = cancelled
    if not started:
        return (
            f"開始前の学習 `{job_id}` をキャンセルしました。現在のモデルのままです。\n"
            f"Training `{job_id}` was cancelled before it started; the current model keeps serving."
        )
    return (
        f"学習 `{job_id}` のキャンセルを受け付けました。次のステップで停止し、進捗メッセージに表示されます。\n"
        f"Cancelling training `{job_id}`: it stops at its next step and its progress message will say so; "
        "the current model keeps serving."
    )


def handle_retrain(
    ack: Ack, command: dict[str, Any], context: BoltContext, client: WebClient, respond: Respond
) -> None:
    """Admins only, checked here on the server; options are validated before anything is enqueued."""
    ack()
    settings: Settings = context["settings"]
    submitter: JobSubmitter = context["submitter"]
    admins: AdminPolicy = context["admins"]
    user = command.get("user_id", "")
    trigger = command["trigger_id"]
    try:
        admins.require(client, user)
        parsed = parse_retrain(command.get("text") or "", max_epochs=settings.retrain_max_epochs)
        if isinstance(parsed, CancelCommand):
            respond(text=_cancel_text(submitter.cancel_training(user)), response_type="ephemeral")
            return
        if isinstance(parsed, StatusCommand | RollbackCommand):
            admin_request = AdminRequest(
                request_id=trigger,
                user=user,
                channel=command["channel_id"],
                response_url=command.get("response_url"),
                version=parsed.version if isinstance(parsed, RollbackCommand) else None,
            )
            job = STATUS_JOB if isinstance(parsed, StatusCommand) else ROLLBACK_JOB
            submitter.submit_admin(job, admin_request, delivery_key=f"command:{trigger}")
            return
        request = RetrainRequest(
            request_id=trigger,
            user=user,
            channel=command["channel_id"],
            response_url=command.get("response_url"),
            model_type=parsed.model_type,
            base_model=parsed.base_model,
            epochs=parsed.epochs,
            force=parsed.force,
        )
        job_id = submitter.submit_retrain(request, f"command:{trigger}", settings.retrain_timeout_s)
    except TrainingInProgressError as exc:
        summary = progress_line(exc.job_id, submitter.training_progress())
        respond(text=f"{exc.user_message}\n{summary}", response_type="ephemeral")
        return
    except NewsbotError as exc:
        metrics.REQUESTS.labels(kind="retrain", outcome="refused").inc()
        respond(text=exc.user_message, response_type="ephemeral")
        return
    except RedisError:
        log.exception("could not enqueue /retrain %s", trigger)
        respond(text=QUEUE_DOWN, response_type="ephemeral")
        return
    if job_id is not None:
        respond(text=_queued_text(job_id, parsed, settings), response_type="ephemeral")


def register(app: App) -> None:
    app.command("/classify-news")(handle_classify_news)
    app.command("/retrain")(handle_retrain)
