"""``worker.retrain.retrain``: an admin's /retrain, run by the training worker (``python -m worker --queues train``).

It posts one progress message in the channel where /retrain was asked and keeps it current with chat.update
(throttled), exports the users' corrections as extra training examples, trains through ``training.api``, and
ends with the new model's test metrics beside the current one's, whether it was promoted and why, and the
confusion matrix as a PNG. A failed training leaves the current model serving and tells the admin what to do
(with a reference id to find the details in this worker's log; no paths or exception reprs in the channel).

While it runs, a :class:`TrainingGuard` renews the training lock (TTL ``TRAINING_LOCK_TTL_S``, so that a killed
worker's lock lapses within it) and stops the training at its next progress report when the worker is asked to
shut down (SIGTERM/SIGINT, e.g. a redeploy) or an admin runs ``/retrain cancel``: the progress message then says
so, the lock is released, and the current model keeps serving. A worker that dies without a word (SIGKILL, out of
memory) cannot say anything: RQ's maintenance in the next training worker finds its job abandoned and runs
:func:`training_lost`, which edits the progress message to say the training was lost and frees the lock.
"""

from __future__ import annotations

import logging
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import get_current_job
from rq.exceptions import AbandonedJobError
from rq.job import Job
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.editors import EditorPolicy
from common.exceptions import BaseModelNotFoundError, NewsbotError, TrainingStoppedError
from common.jobs import RetrainRequest
from common.mrkdwn import escape
from common.settings import Settings
from newsmodel.registry import has_version, local_version
from newsmodel.store import is_remote
from store import retraining
from store.feedback import FeedbackStore
from store.retraining import TrainingProgress
from training.api import Progress, TrainOutcome, options_from_settings, train
from training.kinds import TRAINED_KINDS
from ui.progress import ENDED_PHASES
from ui.reports import metric, progress_text
from ui.retrain import failed_text, lost_text, report_blocks, result_text, retrain_header, stopped_text
from worker.homes import publish_homes_after_model_change
from worker.jobs import runtime, training_run

log = logging.getLogger(__name__)

# How often, at most, the training's progress callback looks for an admin's /retrain cancel in Redis.
CANCEL_POLL_S = 1.0
# The signals that ask a worker to shut down (docker compose stop, Ctrl+C).
SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Where a training job keeps its progress message in its RQ meta, for :func:`training_lost`.
PROGRESS_MESSAGE_META = "progress_message"


def resolve_base(name: str | None, settings: Settings) -> str:
    """What ``base=`` names, as training loads it: a hub name as is, a folder name as its path.

    A folder name is looked up in BASE_MODELS_DIR, then among the registry's versions in MODEL_DIR (to continue
    from a trained model); it must stay inside that folder once links are resolved. Without ``base=``, the
    BASE_MODEL setting (chosen by whoever runs the product, so trusted as is).
    """
    if name is None:
        return settings.base_model
    if "/" in name:
        return name  # org/name, validated by the bot; loaded from the hub (or its local cache)
    remote = is_remote(settings.model_dir)
    for area in (settings.base_models_dir, *([] if remote else [Path(settings.model_dir)])):
        root = area.resolve()
        candidate = (root / name).resolve()
        if candidate.is_relative_to(root) and candidate != root and candidate.is_dir():
            return str(candidate)
    if remote and has_version(settings.model_dir, name):
        return str(local_version(settings.model_dir, name, settings.model_cache_dir).resolve())
    raise BaseModelNotFoundError(name, str(settings.base_models_dir))


class ProgressMessage:
    """The one channel message that shows a training, updated in place (at most every ``interval_s``)."""

    def __init__(
        self,
        client: WebClient,
        connection: Redis,
        channel: str,
        job_id: str,
        header: str,
        interval_s: float,
    ) -> None:
        self.client = client
        self.connection = connection
        self.channel = channel
        self.job_id = job_id
        self.header = header
        self.interval_s = interval_s
        self.ts: str | None = None
        self.updates = 0
        self.published = TrainingProgress(job_id=job_id, phase="data", channel=channel)
        self._last_update = 0.0
        self._lock = threading.Lock()

    def start(self) -> None:
        text = progress_text(
            phase="data", step=0, total_steps=0, epoch=None, elapsed_s=0, eta_s=None, metrics=None, header=self.header
        )
        self._publish(self.published)
        try:
            response = self.client.chat_postMessage(channel=self.channel, text=text)
            self.ts = str(response["ts"])
            self.channel = str(response.get("channel") or self.channel)
        except (SlackApiError, SlackClientError) as exc:
            log.warning("could not post the progress message in %s: %s", self.channel, exc)
        self._last_update = time.monotonic()

    def report(self, progress: Progress) -> None:
        """The callback ``training.api.train`` calls as it goes."""
        metrics = dict(progress.metrics or {})
        self._publish(
            replace(
                self.published,
                phase=progress.phase,
                step=progress.step,
                total_steps=progress.total_steps,
                epoch=progress.epoch,
                elapsed_s=progress.elapsed_s,
                eta_s=progress.eta_s,
                accuracy=metric(metrics, "accuracy"),
                macro_f1=metric(metrics, "macro_f1", "f1_macro"),
                message=progress.message or "",
            )
        )
        if progress.phase == "done":
            return  # the result, shown by finish(), follows at once
        with self._lock:
            now = time.monotonic()
            if now - self._last_update < self.interval_s:
                return
            self._last_update = now
        self.update(
            progress_text(
                phase=progress.phase,
                step=progress.step,
                total_steps=progress.total_steps,
                epoch=progress.epoch,
                elapsed_s=progress.elapsed_s,
                eta_s=progress.eta_s,
                metrics=metrics,
                message=progress.message or "",
                header=self.header,
            )
        )

    def update(self, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        if self.ts is None:
            return
        try:
            self.client.chat_update(channel=self.channel, ts=self.ts, text=text, blocks=blocks)
            self.updates += 1
        except (SlackApiError, SlackClientError) as exc:
            log.warning("could not update the progress message %s: %s", self.ts, exc)

    def finish(self, phase: str, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        self._publish(replace(self.published, phase=phase), ended=True)
        if self.ts is None:
            # The progress message could not be posted (e.g. the bot is not in the channel): say it once now.
            try:
                self.client.chat_postMessage(channel=self.channel, text=text, blocks=blocks)
            except (SlackApiError, SlackClientError) as exc:
                log.warning("could not report the training result in %s: %s", self.channel, exc)
            return
        self.update(text, blocks)

    def _publish(self, progress: TrainingProgress, *, ended: bool = False) -> None:
        """Publish ``progress`` for /retrain status, with where the progress message is."""
        self.published = replace(progress, channel=self.channel, ts=self.ts or "")
        retraining.put_training_progress(self.connection, self.published, ended=ended)


class TrainingGuard:
    """What a running training needs besides the training itself (a context manager around it).

    * Renews the training lock every ``lock_ttl_s / 3`` in a thread, with TTL ``lock_ttl_s``: when the worker dies
      (SIGKILL, out of memory), nothing renews it and it lapses within ``lock_ttl_s``.
    * Releases the lock on the way out, whatever the outcome, before the caller reports it.
    * Notes a shutdown signal (SIGTERM, SIGINT), then passes it on to the worker's own handler (RQ's warm
      shutdown: it exits once this job has returned).
    * :meth:`check`, called from the progress callback, raises :class:`TrainingStoppedError` once either a
      shutdown was asked for or an admin ran ``/retrain cancel`` (looked up in Redis at most every CANCEL_POLL_S).
    """

    def __init__(self, connection: Redis, job_id: str, lock_ttl_s: int) -> None:
        self.connection = connection
        self.job_id = job_id
        self.lock_ttl_s = lock_ttl_s
        self.shutdown = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._previous: dict[int, Any] = {}
        self._last_poll = 0.0

    def __enter__(self) -> TrainingGuard:
        if not retraining.hold_training_lock(self.connection, self.job_id, self.lock_ttl_s, take_if_free=True):
            held = retraining.training_lock(self.connection)
            log.warning("training %s runs while %s holds the training lock", self.job_id, held and held.job_id)
        self._thread = threading.Thread(target=self._heartbeat, name=f"training-lock-{self.job_id}", daemon=True)
        self._thread.start()
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread only
            for sig in SHUTDOWN_SIGNALS:
                self._previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._on_signal)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for sig, previous in self._previous.items():
            if signal.getsignal(sig) == self._on_signal:  # else the worker replaced it (RQ's cold shutdown): keep
                signal.signal(sig, previous)
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        # Free the lock before anything says the training is over (stopped, failed or done, said by the caller
        # once this block is left): an admin who reacts at once must find no training running.
        try:
            retraining.release_training_lock(self.connection, self.job_id)
        except RedisError as exc:
            log.warning(
                "could not release the training lock of %s (it lapses within %ss): %s",
                self.job_id,
                self.lock_ttl_s,
                exc,
            )

    def _heartbeat(self) -> None:
        interval = self.lock_ttl_s / retraining.TRAINING_LOCK_RENEWALS_PER_TTL
        while not self._done.wait(interval):
            try:
                if not retraining.hold_training_lock(self.connection, self.job_id, self.lock_ttl_s):
                    log.warning("training %s no longer holds the training lock", self.job_id)
            except RedisError as exc:
                log.warning("could not renew the training lock of %s: %s", self.job_id, exc)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.warning("training %s: %s received, stopping at the next step", self.job_id, signal.Signals(signum).name)
        self.shutdown.set()
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)

    def check(self) -> None:
        """Raise :class:`TrainingStoppedError` when the training must stop now."""
        if self.shutdown.is_set():
            raise TrainingStoppedError()
        now = time.monotonic()
        if now - self._last_poll < CANCEL_POLL_S:
            return
        self._last_poll = now
        try:
            cancel = retraining.training_cancel(self.connection, self.job_id)
        except RedisError as exc:
            log.warning("could not look for a cancel of %s: %s", self.job_id, exc)
            return
        if cancel is not None:
            raise TrainingStoppedError(cancel.user)

    def reporter(self, progress: ProgressMessage) -> Callable[[Progress], None]:
        """``progress.report``, after :meth:`check` (never once the model is registered: "done" is final)."""

        def report(update: Progress) -> None:
            if update.phase != "done":
                self.check()
            progress.report(update)

        return report


def _upload_png(
    client: WebClient, channel: str, thread_ts: str | None, png: Path | None, filename: str, title: str, comment: str
) -> bool:
    if png is None or not Path(png).is_file():
        return False
    try:
        client.files_upload_v2(
            channel=channel, thread_ts=thread_ts, file=str(png), filename=filename, title=title, initial_comment=comment
        )
    except (SlackApiError, SlackClientError, OSError) as exc:
        # OSError: files_upload_v2 sends the bytes to the upload URL Slack gave with urllib (URLError, a reset):
        # a picture that could not be uploaded never fails the training, whose version is registered already.
        log.warning("could not upload %s: %s", filename, exc)
        return False
    return True


@dataclass(frozen=True)
class Picture:
    """A picture a finished training posts in its thread: which file of the outcome, and how it is named ({v}: the
    version)."""

    png: Callable[[TrainOutcome], Path | None]
    filename: str
    title: str
    comment: str


# The report's pictures, uploaded in this order; each one's success is the job result's ``uploaded_<name>``.
PICTURES = {
    "confusion_matrix": Picture(
        lambda outcome: outcome.confusion_png,
        "confusion-matrix-{v}.png",
        "混同行列 / Confusion matrix — {v}",
        "`{v}` のテストデータでの混同行列 / confusion matrix on the test split",
    ),
    # The calibration's reliability diagram (test split, raw and calibrated).
    "reliability_diagram": Picture(
        lambda outcome: outcome.reliability_png,
        "reliability-{v}.png",
        "信頼度図 / Reliability diagram — {v}",
        "`{v}` の確率の較正 (テストデータ) / calibration of the scores on the test split",
    ),
    # The precision-coverage curve (test split) with the chosen sure bar marked.
    "coverage_curve": Picture(
        lambda outcome: outcome.coverage_png,
        "precision-coverage-{v}.png",
        "精度と確信の割合 / Precision and coverage — {v}",
        "`{v}` の確信の基準 (テストデータ) / the sure bar's precision and coverage on the test split",
    ),
}


def upload_pictures(client: WebClient, channel: str, thread_ts: str | None, outcome: TrainOutcome) -> dict[str, bool]:
    """Each of :data:`PICTURES` uploaded in the thread: name → whether it was."""
    v = outcome.version
    return {
        name: _upload_png(
            client,
            channel,
            thread_ts,
            picture.png(outcome),
            picture.filename.format(v=v),
            picture.title.format(v=v),
            picture.comment.format(v=v),
        )
        for name, picture in PICTURES.items()
    }


def retrain_options(request: RetrainRequest, settings: Settings) -> str:
    """The options a training runs with, as its progress message names them (a linear model has no base model
    and no epochs)."""
    kind = TRAINED_KINDS[request.model_type]
    options = [f"type={escape(request.model_type)}"]
    if kind.takes_base_model:
        options.append(f"base={escape(request.base_model or settings.base_model)}")
    if kind.takes_epochs:
        options.append(f"epochs={request.epochs:g}" if request.epochs is not None else "epochs=default")
    if request.force:
        options.append("force")
    return ", ".join(options)


def training_lost(
    job: Job, connection: Redis, exc_type: type[BaseException], exc_value: BaseException, traceback: Any
) -> None:
    """RQ's failure callback of a training job (``on_failure``), run in the training worker whose maintenance finds
    the job abandoned: its worker died (SIGKILL, out of memory, power) and nothing else will ever say so.

    Edits the progress message to say the training was lost, marks the progress ended, and frees the lock if this
    job still holds it. A training that failed on its own has already said so: nothing is done then.
    """
    if not issubclass(exc_type, AbandonedJobError):
        return
    rt = runtime()
    request = RetrainRequest.from_dict(job.args[0])
    text = lost_text(retrain_header(job.id, request.user, retrain_options(request, rt.settings)), job.id)
    log.warning("training %s was abandoned by its worker; reporting it lost", job.id)
    progress = retraining.training_progress(connection)
    if progress is not None and progress.job_id == job.id and progress.phase not in ENDED_PHASES:
        retraining.put_training_progress(
            connection, replace(progress, phase="stopped", message="worker lost"), ended=True
        )
    retraining.release_training_lock(connection, job.id)
    where = job.meta.get(PROGRESS_MESSAGE_META) or {}
    try:
        if where.get("ts"):
            rt.replier.client.chat_update(channel=where["channel"], ts=where["ts"], text=text)
        else:  # it died before its progress message was posted
            rt.replier.client.chat_postMessage(channel=request.channel, text=text)
    except (SlackApiError, SlackClientError) as exc:
        log.warning("could not report the lost training %s in Slack: %s", job.id, exc)


@training_run
def retrain(payload: dict[str, Any]) -> dict[str, Any]:
    """Train, evaluate, maybe promote, and report in Slack; the dict is kept as the job's result."""
    rt = runtime()
    settings = rt.settings
    request = RetrainRequest.from_dict(payload)
    job = get_current_job()
    job_id = job.id if job else request.request_id
    header = retrain_header(job_id, request.user, retrain_options(request, settings))
    progress = ProgressMessage(
        rt.replier.client, rt.connection, request.channel, job_id, header, settings.progress_interval_s
    )
    guard = TrainingGuard(rt.connection, job_id, settings.training_lock_ttl_s)
    try:
        with guard:
            progress.start()
            if job is not None and progress.ts:  # where training_lost says so if this worker dies
                job.meta[PROGRESS_MESSAGE_META] = {"channel": progress.channel, "ts": progress.ts}
                job.save_meta()  # type: ignore[no-untyped-call]
            guard.check()  # cancelled while it was queued
            base = resolve_base(request.base_model, settings)
            with tempfile.TemporaryDirectory(prefix="newsbot-feedback-") as tmp:
                policy = EditorPolicy(settings).trust_policy(rt.replier.client)
                extra = FeedbackStore(rt.connection).export_corrections(
                    Path(tmp) / "corrections.jsonl", policy, Path(tmp) / "holdout.jsonl", Path(tmp) / "recent.jsonl"
                )
                log.info(
                    "training %s with %d corrected examples (%d skipped, %d editor-confirmed held out, %d recent)",
                    job_id,
                    extra.written,
                    extra.skipped,
                    extra.held_out,
                    extra.recent,
                )
                options = options_from_settings(
                    settings,
                    base_model=base,
                    model_type=request.model_type,
                    num_train_epochs=request.epochs,
                    force=request.force,
                    extra_examples=extra.path if extra.written else None,
                    holdout_examples=extra.holdout_path if extra.held_out else None,
                    recent_examples=extra.recent_path if extra.recent else None,
                )
                outcome = train(options, guard.reporter(progress))
    except TrainingStoppedError as exc:
        log.warning("training %s stopped: %s", job_id, exc)
        phase = "cancelled" if exc.cancelled_by else "stopped"
        progress.finish(phase, stopped_text(header, exc))
        return {"stopped": phase, "cancelled_by": exc.cancelled_by}
    except (SystemExit, KeyboardInterrupt):  # RQ's cold shutdown (a second SIGTERM) mid-step
        log.warning("training %s stopped by a cold shutdown", job_id)
        progress.finish("stopped", stopped_text(header, TrainingStoppedError()))
        raise
    except NewsbotError as exc:
        log.warning("training %s failed (reference %s): %s", job_id, job_id, exc)
        progress.finish("failed", failed_text(header, exc, job_id))
        return {"error": type(exc).__name__, "message": str(exc), "reference": job_id}
    except Exception as exc:
        log.exception("training %s failed (reference %s)", job_id, job_id)
        progress.finish("failed", failed_text(header, exc, job_id))
        raise

    text = result_text(header, outcome, extra.skipped, extra.members)
    uploaded = upload_pictures(rt.replier.client, progress.channel, progress.ts, outcome)
    if not uploaded["confusion_matrix"]:
        text += "\n(混同行列の画像はアップロードできませんでした / the confusion-matrix image could not be uploaded)"
    progress.finish("done", text, report_blocks(text, None if outcome.promoted else outcome.version))
    publish_homes_after_model_change(rt)
    return {
        "version": outcome.version,
        "promoted": outcome.promoted,
        "reason": outcome.reason,
        "metrics": outcome.metrics,
        "extra_examples_used": outcome.extra_examples_used,
        "extra_examples_skipped": outcome.extra_examples_skipped + extra.skipped,
        "editor_holdout": extra.held_out,
        "recent_editor_labels": extra.recent,
        "corrections_by_member": {user: asdict(tally) for user, tally in extra.members.items()},
        "progress_updates": progress.updates,
        **{f"uploaded_{name}": done for name, done in uploaded.items()},
    }
