"""``/retrain``: train, ``status``, ``rollback [version]``, ``cancel``. Admins only, checked here on the server;
options are validated before anything is enqueued."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError
from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.admins import AdminPolicy
from bot.options import RetrainCommand, RollbackCommand, TrainCommand, parse_retrain
from bot.submit import JobSubmitter
from common.exceptions import NewsbotError, TrainingInProgressError
from common.jobs import ROLLBACK_JOB, STATUS_JOB, AdminRequest, RetrainRequest
from common.settings import Settings
from telemetry import metrics
from ui.commands import RETRAIN
from ui.progress import progress_line
from ui.retrain import cancel_text, queued_text, train_options
from ui.texts import QUEUE_DOWN

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetrainCall:
    """An admin's ``/retrain``, checked and parsed."""

    command: dict[str, Any]
    submitter: JobSubmitter
    settings: Settings
    user: str
    parsed: RetrainCommand

    @property
    def trigger(self) -> str:
        return str(self.command["trigger_id"])

    def admin_request(self, version: str | None = None) -> AdminRequest:
        return AdminRequest(
            request_id=self.trigger,
            user=self.user,
            channel=self.command["channel_id"],
            response_url=self.command.get("response_url"),
            version=version,
        )


def _train(call: RetrainCall) -> str | None:
    """Enqueue the training (the only one queued or running); the answer says which, with its options."""
    train = call.parsed
    if not isinstance(train, TrainCommand):
        raise TypeError(f"not a training: {train}")
    request = RetrainRequest(
        request_id=call.trigger,
        user=call.user,
        channel=call.command["channel_id"],
        response_url=call.command.get("response_url"),
        model_type=train.model_type,
        base_model=train.base_model,
        epochs=train.epochs,
        force=train.force,
    )
    settings = call.settings
    job_id = call.submitter.submit_retrain(request, f"command:{call.trigger}", settings.retrain_timeout_s)
    if job_id is None:  # a redelivery of the same command
        return None
    base = train.base_model or settings.base_model
    return queued_text(job_id, train_options(train.model_type, base, train.epochs, train.force))


def _status(call: RetrainCall) -> str | None:
    """Enqueued: a worker answers through the response_url."""
    call.submitter.submit_admin(STATUS_JOB, call.admin_request(), delivery_key=f"command:{call.trigger}")
    return None


def _rollback(call: RetrainCall) -> str | None:
    """Enqueued: a worker switches the model and answers through the response_url."""
    version = call.parsed.version if isinstance(call.parsed, RollbackCommand) else None
    call.submitter.submit_admin(ROLLBACK_JOB, call.admin_request(version), delivery_key=f"command:{call.trigger}")
    return None


def _cancel(call: RetrainCall) -> str | None:
    return cancel_text(call.submitter.cancel_training(call.user))


# The forms of /retrain (ui.commands names them for the help): each returns the answer to the admin, or None
# when a worker answers.
SUBCOMMANDS: dict[str, Callable[[RetrainCall], str | None]] = {
    "train": _train,
    "status": _status,
    "rollback": _rollback,
    "cancel": _cancel,
}


def handle_retrain(
    ack: Ack,
    command: dict[str, Any],
    submitter: JobSubmitter,
    settings: Settings,
    admins: AdminPolicy,
    client: WebClient,
    respond: Respond,
) -> None:
    """Ack at once, then check the admin (a Slack call), parse, and dispatch on :data:`SUBCOMMANDS`."""
    ack()
    user = command.get("user_id", "")
    try:
        admins.require(client, user)
        parsed = parse_retrain(command.get("text") or "", max_epochs=settings.retrain_max_epochs)
        answer = SUBCOMMANDS[parsed.SUBCOMMAND](RetrainCall(command, submitter, settings, user, parsed))
    except TrainingInProgressError as exc:
        answer = f"{exc.user_message}\n{progress_line(exc.job_id, submitter.training_progress())}"
    except NewsbotError as exc:
        metrics.REQUESTS.labels(kind="retrain", outcome="refused").inc()
        answer = exc.user_message
    except RedisError:
        log.exception("could not enqueue %s %s", RETRAIN, command["trigger_id"])
        answer = QUEUE_DOWN
    if answer is not None:
        respond(text=answer, response_type="ephemeral")


def register(app: App) -> None:
    app.command(RETRAIN)(handle_retrain)
