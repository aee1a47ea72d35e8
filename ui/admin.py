"""The answers to ``/retrain status`` and ``/retrain rollback [version]`` (to the admin who asked), and the admins'
notices on the App Home. The worker reads the registry and formats each version's line (``ui.reports``)."""

from __future__ import annotations

from collections.abc import Sequence

from common.mrkdwn import code, escape, literal
from store.retraining import TrainingProgress
from store.serving import ServingState
from ui.progress import progress_line
from ui.reports import confidence_line

NO_TRAINING = "学習は実行されていません。/ No training in progress."


def serving_lines(servings: Sequence[ServingState]) -> list[str]:
    """One line per worker: what it serves, where, since when, and its last error."""
    lines = []
    for serving in servings:
        line = f"• `{serving.worker}`: `{serving.version or '—'}` on {serving.device or '?'}"
        if serving.loaded_at:
            line += f", loaded {serving.loaded_at}"
        rule = confidence_line(serving.confidence)
        if rule:
            line += f"\n    {rule}"
        if serving.last_error:
            line += f"\n    :warning: {literal(serving.last_error)}"
        lines.append(line)
    return lines


def training_lines(job_id: str | None, progress: TrainingProgress | None) -> list[str]:
    """The training holding the lock (``job_id``) and its progress, or that there is none."""
    if job_id is None:
        return [NO_TRAINING]
    return [progress_line(job_id, progress)]


def status_text(
    model_lines: Sequence[str],
    servings: Sequence[ServingState],
    training: Sequence[str],
    versions: Sequence[str],
    listed: int,
) -> str:
    """``/retrain status``: the current model (its lines), the workers, the training, the latest ``listed``
    versions (their lines, newest first)."""
    lines = ["*現在のモデル / Current model*", *model_lines, "*ワーカー / Workers*"]
    lines.extend(serving_lines(servings) or ["稼働中のワーカー情報なし / no worker has reported yet"])
    lines.append("*学習 / Training*")
    lines.extend(training)
    if versions:
        lines.append(f"*バージョン / Versions* (最新 {listed} / latest {listed})")
        lines.extend(versions)
    return "\n".join(lines)


def pinned_model(path: str) -> str:
    return f"MODEL_PATH {code(path)} (固定 / pinned; the registry is not used)"


def unregistered_model(named: str | None) -> str:
    return f"{code(named)} (登録なし / not a registered version)" if named else "なし / none yet"


def rollback_refused(detail: str, user_message: str) -> str:
    return f":warning: 切り替えできませんでした / Could not switch: {literal(detail)}\n{escape(user_message)}"


def rollback_done(now: str, before: str | None, metrics: str) -> str:
    """``now`` is current (``before`` was); ``metrics``: its test metrics' line."""
    return (
        f"現在のモデルを `{now}` にしました (以前: `{before}`)。各ワーカーが数秒で読み込み直します。\n"
        f"`{now}` is now current (was `{before}`); workers reload it within seconds.\n"
        f"{metrics}"
    )


def making_current(version: str | None) -> str:
    """The answer to the report's "Promote anyway" button."""
    return f"`{version}` を現在のモデルにしています… / Making `{version}` current…"


HOME_ROLLING_BACK = (
    "一つ前のモデルに戻しています… 結果はこのアプリとの DM に届きます。\n"
    "Rolling back to the previous model… the result comes in your DM with the app."
)


def home_making_current(version: str) -> str:
    """The Home's notice after an admin picked a version to promote."""
    return (
        f"`{version}` を現在のモデルにしています… 結果はこのアプリとの DM に届きます。\n"
        f"Making `{version}` current… the result comes in your DM with the app."
    )


REOPEN_HOME = (
    "ホームタブを開き直してからもう一度お試しください。\n"
    "Please open the Home tab again, then try once more (the bot does not know your DM with it yet)."
)

EDITORS_ONLY = (
    ":no_entry: 訂正のレビューは編集者だけができます。\n"
    "Only editors (admins, EDITOR_USER_IDS, EDITOR_USERGROUP) review corrections."
)
EDITORS_ONLY_LABELS = (
    ":no_entry: 自信なし記事のラベル付けは編集者だけができます。\n"
    "Only editors (admins, EDITOR_USER_IDS, EDITOR_USERGROUP) label the unsure articles here."
)


def review_done(accepted: bool, member: str) -> str:
    """The Home's notice after an editor decided on ``member``'s correction."""
    if accepted:
        return (
            f":white_check_mark: <@{escape(member)}> さんの訂正を承認しました。次の再学習で使われます。\n"
            f"Accepted <@{escape(member)}>'s correction: the next retraining uses it (within the daily cap)."
        )
    return (
        f":x: <@{escape(member)}> さんの訂正を却下しました (削除はされません)。\n"
        f"Rejected <@{escape(member)}>'s correction: it is kept, and no training uses it."
    )
