"""What newsbot says about trainings: the bot's answers to ``/retrain`` and the Home's retrain button, the
training job's header, its end (stopped, lost, failed) and its report, with the report's Block Kit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from common.exceptions import BaseModelNotFoundError, CorpusError, TrainingStoppedError
from common.labels import LabelSet
from common.mrkdwn import code, escape, literal
from store.trust import MemberTally
from ui.blocks import SECTION_TEXT_MAX, actions, button, confirm, section
from ui.ids import RETRAIN_PROMOTE_ACTION, RETRAIN_PROMOTE_BLOCK_ID
from ui.progress import duration
from ui.reports import labels_line, metrics_line

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
    return f"type={model_type}, base={literal(base)}, epochs={shown}{', force' if force else ''}"


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


class TrainingResult(Protocol):
    """What the report says of a finished training (``training.api.TrainOutcome`` is one)."""

    @property
    def version(self) -> str: ...
    @property
    def promoted(self) -> bool: ...
    @property
    def reason(self) -> str: ...
    @property
    def metrics(self) -> Mapping[str, Any]: ...
    @property
    def previous_version(self) -> str | None: ...
    @property
    def previous_metrics(self) -> Mapping[str, Any] | None: ...
    @property
    def extra_examples_used(self) -> int: ...
    @property
    def extra_examples_skipped(self) -> int: ...
    @property
    def train_seconds(self) -> float: ...
    @property
    def labels(self) -> LabelSet: ...


def retrain_header(job_id: str, user: str, options: str) -> str:
    """The first line of the progress message: which training, whose, with which options."""
    return f":brain: *モデルの再学習 / Retraining* `{job_id}` — <@{user}> ({options})"


def stopped_text(header: str, exc: TrainingStoppedError) -> str:
    keeps = "現在のモデルのままです / the current model keeps serving."
    if exc.cancelled_by:
        return (
            f"{header}\n:no_entry_sign: *学習をキャンセルしました / Training cancelled* by <@{exc.cancelled_by}> — "
            f"{keeps}\n新しいバージョンは作られていません / No new version was made."
        )
    return (
        f"{header}\n:octagonal_sign: *学習を中断しました / Training stopped* — 学習ワーカーが停止しました"
        f" (再デプロイなど) / the training worker was shut down (a redeploy?). {keeps}\n"
        "もう一度学習するには `/retrain` を実行してください。/ Run `/retrain` again to train."
    )


def lost_text(header: str, reference: str) -> str:
    return (
        f"{header}\n:octagonal_sign: *学習が中断されました / Training lost* — 学習ワーカーが途中で停止しました"
        " (メモリ不足、強制終了など)。現在のモデルのままです / the training worker died mid-way (out of memory? "
        "killed?); the current model keeps serving.\n"
        "もう一度学習するには `/retrain` を実行してください。/ Run `/retrain` again to train. "
        f"(参照 ID / reference id: `{reference}`)"
    )


def failed_text(header: str, exc: BaseException, reference: str) -> str:
    """What the admin is told of a failed training: what to do, and the reference to find the details in the log.

    Never the exception itself (paths, hub errors, reprs): those stay in the worker's log.
    """
    if isinstance(exc, BaseModelNotFoundError):
        advice = (
            "ベースモデルが見つかりません。`base=` の名前 (BASE_MODELS_DIR 内のフォルダ名、MODEL_DIR のバージョン名、"
            "またはハブの org/name) を確認してください。\n"
            "The base model was not found: check the `base=` name (a folder in BASE_MODELS_DIR, a version in "
            "MODEL_DIR, or a hub name org/name)."
        )
    elif isinstance(exc, CorpusError):
        advice = (
            "学習データを読み込めませんでした。学習ワーカーの TRAIN_DATA の設定を確認してください。\n"
            "The training data could not be read: check the train worker's TRAIN_DATA setting."
        )
    else:
        advice = (
            "ベースモデル名 (BASE_MODEL / `base=`、BASE_MODELS_DIR) と TRAIN_DATA の設定を確認してください。\n"
            "Check the base model name (BASE_MODEL or `base=`, BASE_MODELS_DIR) and the TRAIN_DATA setting."
        )
    return (
        f"{header}\n:x: *学習に失敗しました / Training failed* — 現在のモデルのままです / "
        f"the current model keeps serving.\n{advice}\n"
        "もう一度 `/retrain` を試すか、学習ワーカーのログで参照 ID を検索してください。\n"
        f"Try `/retrain` again, or look up the reference id in the train worker's log. "
        f"(参照 ID / reference id: `{reference}`)"
    )


# Members listed by name in the report at most (the others are summed in one line).
REPORT_MEMBERS_MAX = 15


def corrections_lines(members: Mapping[str, MemberTally]) -> list[str]:
    """What became of each member's corrections: used, held for review, capped, and (when any) rejected,
    outvoted, held out as editor-confirmed, or skipped."""
    if not members:
        return []
    total = MemberTally()
    for tally in members.values():
        for name in ("used", "held", "capped", "rejected", "outvoted", "held_out", "skipped"):
            setattr(total, name, getattr(total, name) + getattr(tally, name))
    lines = [
        "メンバーごとの訂正 / Corrections by member (使用 used / レビュー待ち held for review / 上限超過 capped): "
        f"{total.used} used, {total.held} held for review, {total.capped} capped"
    ]
    ranked = sorted(members.items(), key=lambda item: (-(item[1].held + item[1].capped + item[1].used), item[0]))
    for user, tally in ranked[:REPORT_MEMBERS_MAX]:
        extra = [
            f"{count} {name}"
            for name, count in (
                ("rejected", tally.rejected),
                ("outvoted", tally.outvoted),
                ("held out (editor-confirmed)", tally.held_out),
                ("skipped", tally.skipped),
            )
            if count
        ]
        more = f", {', '.join(extra)}" if extra else ""
        lines.append(
            f"• <@{escape(user)}>: {tally.used} used, {tally.held} held for review, {tally.capped} capped{more}"
        )
    if len(ranked) > REPORT_MEMBERS_MAX:
        hidden = len(ranked) - REPORT_MEMBERS_MAX
        lines.append(f"…他 {hidden} 人 / and {hidden} more members")
    if total.held:
        lines.append(
            f":hourglass: {total.held} 件の訂正が編集者のレビュー待ちです (App Home で承認・却下)。/ "
            f"{total.held} corrections wait for an editor's review in the App Home: not trained on until accepted."
        )
    return lines


def result_text(
    header: str,
    outcome: TrainingResult,
    skipped_corrections: int = 0,
    members: Mapping[str, MemberTally] | None = None,
) -> str:
    """The training report: the new version against the current one, whether it was promoted and why, the
    corrections from feedback used and skipped (``skipped_corrections``: those the export left out), and what
    became of each member's corrections (``members``)."""
    lines = [header, f"*完了 / Done* — 新しいバージョン / new version `{outcome.version}`"]
    lines.append(f"新モデル (テスト) / New model (test): {metrics_line(outcome.metrics)}")
    lines.append(labels_line(outcome.labels, "新モデルのラベル / New model's labels"))
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
    skipped = outcome.extra_examples_skipped + skipped_corrections
    lines.extend(_confidence_lines(outcome.metrics))
    lines.extend(editor_sets_lines(outcome.metrics))
    lines.append(f"フィードバックの訂正例 / Corrected examples from feedback: {used} used, {skipped} skipped")
    lines.extend(corrections_lines(members or {}))
    lines.append(f"学習時間 / Training time: {duration(outcome.train_seconds)}")
    return "\n".join(lines)


def editor_sets_lines(metrics: Mapping[str, Any] | None) -> list[str]:
    """Beside the test split: the candidate against the current model on the editor-confirmed holdout and on the
    most recent editor-labelled records (labelled after the training data, never trained on), or why the recent
    ones were not used (too few)."""
    lines = []
    names = (
        ("editor_holdout", "編集者確認済みの保留分 / Editor-confirmed holdout"),
        ("recent_editor_labels", "最新の編集者ラベル / Most recent editor labels"),
    )
    for key, name in names:
        found = (metrics or {}).get(key)
        if not isinstance(found, Mapping):
            continue
        try:
            count = int(found["examples"])
            if found.get("used") is False:
                least = int(found.get("min_examples", 0))
                lines.append(f"{name}: {count} 件 / records — {least} 件未満のため使いません / too few (under {least})")
                continue
            new, current = float(found["accuracy"]), float(found["current_accuracy"])
            version = code(str(found["current_version"]))
            lines.append(
                f"{name}: {count} 件 / records — 正解率 / accuracy {new:.1%} (現在 / current {version} {current:.1%})"
            )
        except (KeyError, TypeError, ValueError):
            continue
    return lines


def _confidence_lines(metrics: Mapping[str, Any] | None) -> list[str]:
    """The calibration and the sure bar the new model earned (metrics.json's ``confidence``): ECE before and after,
    the bar with the coverage and precision it reached on the test split, and why it fell back, if it did."""
    report = (metrics or {}).get("confidence")
    if not isinstance(report, Mapping):
        return []
    try:
        ece, rule = report["ece"]["test"], report["rule"]
        test = rule["test"]
        lines = [
            f"較正 / Calibration: ECE {float(ece['before']):.3f} → {float(ece['after']):.3f} (テスト / test)",
            f"確信の基準 / Sure bar: {float(rule['threshold']):.3f} ({rule['source']}, 目標精度 / target precision "
            f"{float(rule['target_precision']):.0%}) — テストで / on test: {float(test['coverage']):.1%} を確信、"
            f"精度 / covered at precision {float(test['precision']):.1%}",
        ]
    except (KeyError, TypeError, ValueError):
        return []
    if report.get("note"):
        lines.append(f":warning: {escape(str(report['note']))}")
    return lines
