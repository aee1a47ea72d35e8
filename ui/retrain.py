"""What newsbot says about trainings: the bot's answers to ``/retrain`` and the Home's retrain button, and the
Block Kit of the training report (the worker writes its text: ``worker.retrain``)."""

from __future__ import annotations

from typing import Any

from common.mrkdwn import escape
from ui.blocks import SECTION_TEXT_MAX, actions, button, confirm, section
from ui.ids import RETRAIN_PROMOTE_ACTION, RETRAIN_PROMOTE_BLOCK_ID

NOTHING_TO_CANCEL = "実行中の学習はありません。/ No training is queued or running: nothing to cancel."


def queued_text(job_id: str, options: str) -> str:
    """``/retrain`` enqueued a training; ``options`` as ``type=…, base=…, epochs=…[, force]``."""
    return (
        f"学習を開始します (`{job_id}`)。進捗はこのチャンネルに表示します。\n"
        f"Training queued (`{job_id}`: {options}); its progress will show in this channel."
    )


def train_options(model_type: str, base: str, epochs: float | None, force: bool) -> str:
    """The options a ``/retrain`` asked for, as :func:`queued_text` names them."""
    shown = f"{epochs:g}" if epochs is not None else "default"
    return f"type={model_type}, base={escape(base)}, epochs={shown}{', force' if force else ''}"


def cancel_text(cancelled: tuple[str, bool] | None) -> str:
    """The answer to ``/retrain cancel``: (the training's job id, whether it had started), or None."""
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


def home_queued_text(job_id: str, kind: str) -> str:
    """The Home's notice after its retrain button enqueued a training of ``kind``."""
    return (
        f":brain: 学習を開始します (`{job_id}`, type={kind})。進捗はこのアプリとの DM に表示します。\n"
        f"Training queued (`{job_id}`, type={kind}); its progress shows in your DM with the app."
    )


def promote_button(version: str) -> dict[str, Any]:
    """The report's "Promote anyway" button, for a version that was trained but not made current."""
    return actions(
        [
            button(
                "それでも採用 / Promote anyway",
                RETRAIN_PROMOTE_ACTION,
                version,
                confirmation=confirm(
                    "採用しますか？ / Promote?",
                    f"`{version}` を現在のモデルにします。/ Make `{version}` current.",
                    "採用 / Promote",
                ),
            )
        ],
        RETRAIN_PROMOTE_BLOCK_ID,
    )


def report_blocks(text: str, unpromoted: str | None) -> list[dict[str, Any]]:
    """The training report: its text (cut to one section), and the promote button for ``unpromoted``, the new
    version when it was not made current."""
    blocks = [section(text[:SECTION_TEXT_MAX])]
    if unpromoted is not None:
        blocks.append(promote_button(unpromoted))
    return blocks
