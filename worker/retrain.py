"""``worker.retrain.retrain``: an admin's /retrain, run by the training worker (``python -m worker --queues train``).

It posts one progress message in the channel where /retrain was asked and keeps it current with chat.update
(throttled), exports the users' corrections as extra training examples, trains through ``training.api``, and
ends with the new model's test metrics beside the current one's, whether it was promoted and why, and the
confusion matrix as a PNG. A failed training leaves the current model serving and says why.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from redis import Redis
from rq import get_current_job
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from common import state
from common.exceptions import BaseModelNotFoundError, NewsbotError
from common.feedback import ExportSummary, FeedbackStore
from common.jobs import RETRAIN_PROMOTE_ACTION, RetrainRequest
from common.mrkdwn import escape
from common.settings import Settings
from common.state import TrainingProgress
from training.api import Progress, TrainOutcome, options_from_settings, train
from worker.jobs import runtime
from worker.reports import duration, metric, metrics_line, progress_text

log = logging.getLogger(__name__)


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
    for area in (settings.base_models_dir, settings.model_dir):
        root = area.resolve()
        candidate = (root / name).resolve()
        if candidate.is_relative_to(root) and candidate != root and candidate.is_dir():
            return str(candidate)
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
        state.put_training_progress(self.connection, self.published, ended=ended)


def result_text(header: str, outcome: TrainOutcome, extra: ExportSummary) -> str:
    lines = [header, f"*完了 / Done* — 新しいバージョン / new version `{outcome.version}`"]
    lines.append(f"新モデル (テスト) / New model (test): {metrics_line(outcome.metrics)}")
    if outcome.previous_version:
        lines.append(f"現在のモデル / Current `{outcome.previous_version}`: {metrics_line(outcome.previous_metrics)}")
    else:
        lines.append("現在のモデル / Current: なし / none")
    if outcome.promoted:
        lines.append(f":white_check_mark: 採用しました / Promoted: {outcome.reason}")
    else:
        lines.append(
            f":pause_button: 採用しませんでした (現在のモデルのまま) / Not promoted (kept current): {outcome.reason}"
        )
    used = outcome.extra_examples_used
    skipped = outcome.extra_examples_skipped + extra.skipped
    lines.append(f"フィードバックの訂正例 / Corrected examples from feedback: {used} used, {skipped} skipped")
    lines.append(f"学習時間 / Training time: {duration(outcome.train_seconds)}")
    return "\n".join(lines)


def promote_button(version: str) -> dict[str, Any]:
    return {
        "type": "actions",
        "block_id": "retrain_promote",
        "elements": [
            {
                "type": "button",
                "action_id": RETRAIN_PROMOTE_ACTION,
                "value": version,
                "text": {"type": "plain_text", "text": "それでも採用 / Promote anyway"},
                "confirm": {
                    "title": {"type": "plain_text", "text": "採用しますか？ / Promote?"},
                    "text": {
                        "type": "mrkdwn",
                        "text": f"`{version}` を現在のモデルにします。/ Make `{version}` current.",
                    },
                    "confirm": {"type": "plain_text", "text": "採用 / Promote"},
                    "deny": {"type": "plain_text", "text": "やめる / Cancel"},
                },
            }
        ],
    }


def upload_confusion_matrix(client: WebClient, channel: str, thread_ts: str | None, outcome: TrainOutcome) -> bool:
    png = outcome.confusion_png
    if png is None or not Path(png).is_file():
        return False
    try:
        client.files_upload_v2(
            channel=channel,
            thread_ts=thread_ts,
            file=str(png),
            filename=f"confusion-matrix-{outcome.version}.png",
            title=f"混同行列 / Confusion matrix — {outcome.version}",
            initial_comment=f"`{outcome.version}` のテストデータでの混同行列 / confusion matrix on the test split",
        )
    except (SlackApiError, SlackClientError) as exc:
        log.warning("could not upload the confusion matrix: %s", exc)
        return False
    return True


def retrain(payload: dict[str, Any]) -> dict[str, Any]:
    """Train, evaluate, maybe promote, and report in Slack; the dict is kept as the job's result."""
    rt = runtime()
    settings = rt.settings
    request = RetrainRequest.from_dict(payload)
    job = get_current_job()
    job_id = job.id if job else request.request_id
    epochs = f"{request.epochs:g}" if request.epochs is not None else "default"
    header = (
        f":brain: *モデルの再学習 / Retraining* `{job_id}` — <@{request.user}> "
        f"(type={escape(request.model_type)}, base={escape(request.base_model or settings.base_model)}, epochs={epochs}"
        + (", force)" if request.force else ")")
    )
    progress = ProgressMessage(
        rt.replier.client, rt.connection, request.channel, job_id, header, settings.progress_interval_s
    )
    progress.start()
    try:
        base = resolve_base(request.base_model, settings)
        with tempfile.TemporaryDirectory(prefix="newsbot-feedback-") as tmp:
            extra = FeedbackStore(rt.connection).export_corrections(Path(tmp) / "corrections.jsonl")
            log.info("training %s with %d corrected examples (%d skipped)", job_id, extra.written, extra.skipped)
            options = options_from_settings(
                settings,
                base_model=base,
                model_type=request.model_type,
                epochs=request.epochs,
                force=request.force,
                extra_examples=extra.path if extra.written else None,
            )
            outcome = train(options, progress.report)
    except NewsbotError as exc:
        log.warning("training %s failed: %s", job_id, exc)
        progress.finish(
            "failed",
            f"{header}\n:x: *学習に失敗しました / Training failed* — 現在のモデルのままです / "
            f"the current model keeps serving.\n{escape(exc.user_message)}\n({escape(str(exc))})",
        )
        return {"error": type(exc).__name__, "message": str(exc)}
    except Exception as exc:
        log.exception("training %s failed", job_id)
        progress.finish(
            "failed",
            f"{header}\n:x: *学習に失敗しました / Training failed* — 現在のモデルのままです / "
            f"the current model keeps serving.\n{type(exc).__name__}: {escape(str(exc))}\n"
            f"(参照 / reference: `{job_id}`)",
        )
        raise
    finally:
        state.release_training_lock(rt.connection, job_id)

    text = result_text(header, outcome, extra)
    uploaded = upload_confusion_matrix(rt.replier.client, progress.channel, progress.ts, outcome)
    if not uploaded:
        text += "\n(混同行列の画像はアップロードできませんでした / the confusion-matrix image could not be uploaded)"
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}]
    if not outcome.promoted:
        blocks.append(promote_button(outcome.version))
    progress.finish("done", text, blocks)
    return {
        "version": outcome.version,
        "promoted": outcome.promoted,
        "reason": outcome.reason,
        "metrics": outcome.metrics,
        "extra_examples_used": outcome.extra_examples_used,
        "extra_examples_skipped": outcome.extra_examples_skipped + extra.skipped,
        "progress_updates": progress.updates,
        "uploaded_confusion_matrix": uploaded,
    }
