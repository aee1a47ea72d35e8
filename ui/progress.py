"""How a training's progress reads in Slack: the phase labels and the one-line summary.

One home for the App Home (ui/home.py), ``/retrain status`` (ui/admin.py), the bot's "already
training" answer (bot/listeners/commands/retrain.py) and the retrain job's progress message (ui/reports.py).
"""

from __future__ import annotations

from common.mrkdwn import escape, literal
from store.retraining import TrainingProgress

PHASES: dict[str, str] = {
    "queued": "順番待ち / Queued",
    "data": "データ準備 / Preparing data",
    "tokenize": "トークン化 / Tokenizing",
    "train": "学習中 / Training",
    "evaluate": "評価中 / Evaluating",
    "register": "登録中 / Registering",
    "done": "完了 / Done",
    "failed": "失敗 / Failed",
    "stopped": "停止 / Stopped",
    "cancelled": "中止 / Cancelled",
}
# The phases of a training that has ended, one way or another.
ENDED_PHASES = ("done", "failed", "stopped", "cancelled")


def duration(seconds: float | None) -> str:
    """``m:ss`` or ``h:mm:ss``; ``—`` for an unknown or negative time."""
    if seconds is None or seconds < 0:
        return "—"
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def figure(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def progress_line(job_id: str, progress: TrainingProgress | None) -> str:
    """One line on training ``job_id``: queued while ``progress`` is not its own, else phase, steps and times."""
    if progress is None or progress.job_id != job_id:
        return f"`{escape(job_id)}`: {PHASES['queued']}"
    parts = [PHASES.get(progress.phase, literal(progress.phase) or "?")]
    if progress.epoch is not None:
        parts.append(f"epoch {progress.epoch:.2f}")
    if progress.total_steps:
        parts.append(f"step {progress.step}/{progress.total_steps}")
    if progress.elapsed_s is not None:
        parts.append(f"経過 / elapsed {duration(progress.elapsed_s)}")
    if progress.eta_s is not None:
        parts.append(f"残り / ETA {duration(progress.eta_s)}")
    if progress.accuracy is not None or progress.macro_f1 is not None:
        parts.append(f"検証 / validation acc {figure(progress.accuracy)}, macro-F1 {figure(progress.macro_f1)}")
    return f"`{escape(job_id)}`: " + " · ".join(parts)
