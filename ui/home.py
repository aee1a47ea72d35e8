"""The App Home: what it shows, read from Redis (:func:`gather`), and the Block Kit view (:func:`home_view`).

Both the bot (on ``app_home_opened`` and after a Home button) and the worker (after it made another model
current, for everyone who opened the Home lately) publish it with ``views.publish``, each with its own client.
The view keeps Slack's limits: at most HOME_MAX_BLOCKS blocks, and no section text over SECTION_TEXT_MAX
characters.

The model shown is the one the workers serve, from the serving state each publishes (the bot never reads
MODEL_DIR). A worker that has just made another version current passes that version's facts as
``announced``: the Home shows it while the workers are still loading it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from redis import Redis

from common.kinds import MODEL_KINDS
from common.labels import LIVEDOOR, OUTSIDE_LABEL, LabelSet
from common.mrkdwn import code, escape, literal
from store import activity, feedback, live, newsroom, retraining, serving
from store.activity import RecentClassification
from store.feedback import FeedbackTally, PendingCorrection, UnsureArticle
from store.live import LiveFigures
from store.newsroom import Route, Watch
from store.retraining import TrainingProgress
from store.serving import ModelFacts, ServingState
from store.trust import TrustPolicy
from ui.blocks import (
    SECTION_TEXT_MAX,
    actions,
    button,
    clip,
    confirm,
    context,
    divider,
    fields,
    header,
    option,
    plain,
    section,
)
from ui.commands import ResponseType, home_help
from ui.feedback import OUTSIDE_NAME, shown
from ui.ids import (
    HOME_ADMIN_BLOCK_ID,
    HOME_PROMOTE_ACTION,
    HOME_REVIEW_ACCEPT_ACTION,
    HOME_REVIEW_REJECT_ACTION,
    HOME_ROLLBACK_ACTION,
    HOME_UNSURE_LABEL_ACTION,
    home_retrain_action,
    review_block_id,
    review_value,
    unsure_block_id,
)
from ui.progress import PHASES, figure, progress_line
from ui.reports import confidence_line, drift_warning, live_line

# Slack's limits on a Home view (and on its texts: ui.blocks), and what this view keeps to.
HOME_MAX_BLOCKS = 100
SELECT_OPTIONS_MAX = 100
LISTED_WORKERS = 10
LISTED_CHANNELS = 30
LISTED_REVIEWS = 8  # pending corrections shown with their buttons (two blocks each)
REVIEWS_COUNTED = 500  # pending corrections counted at most ("500+")
LISTED_REJECTED = 10
LISTED_UNSURE = 6  # today's unsure articles shown with their label select (two blocks each)


@dataclass(frozen=True, slots=True)
class HomeData:
    """Everything one user's Home shows, read at one moment."""

    user: str
    is_admin: bool
    workers: list[ServingState]
    classified_today: int
    classified_week: int
    feedback: FeedbackTally
    recent: list[RecentClassification]
    watches: list[Watch]
    routes: list[Route]
    training_job: str | None = None  # the training holding the lock, admins only
    training: TrainingProgress | None = None  # the latest progress published, admins only
    announced: ModelFacts | None = None
    notice: str = ""
    at: float = field(default_factory=time.time)
    timezone: str = "UTC"  # the newsroom's, where "today" and "last 7 days" begin (NEWSROOM_TIMEZONE)
    classify_response_type: ResponseType = "in_channel"  # where /classify-news answers (CLASSIFY_RESPONSE_TYPE)
    is_editor: bool = False  # sees the review queue
    reviews: list[PendingCorrection] = field(default_factory=list)  # waiting for an editor, oldest first
    reviews_total: int = 0  # how many wait (reviews lists the first of them)
    rejected: list[PendingCorrection] = field(default_factory=list)  # rejected, kept: newest first
    live: LiveFigures | None = None  # the served version's last 7 days (store.live)
    unsure: list[UnsureArticle] = field(default_factory=list)  # today's, no editor's label yet: oldest first
    unsure_total: int = 0  # how many wait (unsure lists the first of them)


def gather(
    connection: Redis,
    user: str,
    is_admin: bool,
    *,
    timezone: str,
    classify_response_type: ResponseType,
    notice: str = "",
    announced: ModelFacts | None = None,
    trust: TrustPolicy | None = None,
) -> HomeData:
    """Read what ``user``'s Home shows from Redis; the day counts are calendar days in ``timezone`` (IANA), and
    its help says where ``/classify-news`` answers (``classify_response_type``). An editor of ``trust`` also sees
    the corrections waiting for review, and those rejected."""
    today, week = activity.classified_counts(connection, tz=ZoneInfo(timezone))
    lock = retraining.training_lock(connection) if is_admin else None
    is_editor = trust is not None and trust.is_editor(user)
    pending: list[PendingCorrection] = []
    rejected: list[PendingCorrection] = []
    unsure: list[UnsureArticle] = []
    if trust is not None and is_editor:
        corrections = feedback.FeedbackStore(connection, timezone)
        pending = corrections.pending_reviews(trust, limit=REVIEWS_COUNTED)
        rejected = corrections.rejected_reviews(trust, limit=LISTED_REJECTED)
        unsure = corrections.unsure_to_label(trust, limit=REVIEWS_COUNTED)
    workers = serving.serving_states(connection)
    model = announced or served_model(workers)
    figures = None if model is None else live.live_figures(connection, model.version, tz=ZoneInfo(timezone))
    return HomeData(
        live=figures,
        unsure=unsure[:LISTED_UNSURE],
        unsure_total=len(unsure),
        is_editor=is_editor,
        reviews=pending[:LISTED_REVIEWS],
        reviews_total=len(pending),
        rejected=rejected,
        user=user,
        is_admin=is_admin,
        workers=workers,
        classified_today=today,
        classified_week=week,
        feedback=feedback.feedback_tally(connection),
        recent=activity.recent_classifications(connection, user),
        watches=newsroom.watches(connection),
        routes=newsroom.routes(connection),
        training_job=lock.job_id if lock else None,
        training=retraining.training_progress(connection) if is_admin else None,
        announced=announced,
        notice=notice,
        timezone=timezone,
        classify_response_type=classify_response_type,
    )


# --- text helpers -------------------------------------------------------------------------------------


def _date(at: float, fallback: str) -> str:
    """A time Slack shows in each reader's own time zone."""
    return f"<!date^{int(at)}^{{date_short_pretty}} {{time}}|{fallback}>"


def _utc(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))


def _iso_date(iso: str) -> str:
    if not iso:
        return "—"
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return escape(iso)
    return _date(moment.timestamp(), moment.strftime("%Y-%m-%d %H:%M UTC"))


def category_name(label: str, labels: LabelSet | None = None) -> str:
    """``label``'s display names in ``labels`` (livedoor's by default), escaped; the label itself without any."""
    labels = LIVEDOOR if labels is None else labels
    return literal(shown(labels, label))


# --- the model ----------------------------------------------------------------------------------------


def served_model(workers: list[ServingState]) -> ModelFacts | None:
    """The model most workers serve (the newest version on a tie), or None while none serves one."""
    models = [w.model for w in workers if w.model is not None]
    if not models:
        return None
    votes = Counter(m.version for m in models)
    version = max(votes, key=lambda v: (votes[v], v))
    return next(m for m in models if m.version == version)


def _model_blocks(data: HomeData) -> list[dict[str, Any]]:
    blocks = [header("現在のモデル / Current model")]
    served = served_model(data.workers)
    model = data.announced or served
    if model is None:
        blocks.append(section("まだモデルが読み込まれていません。/ No worker serves a model yet."))
    else:
        blocks.append(
            fields(
                ("バージョン / Version", code(model.version)),
                ("種類 / Type", escape(model.model_type or "—")),
                ("学習日時 / Trained", _iso_date(model.trained_at)),
                ("テスト正解率 / Test accuracy", figure(model.accuracy)),
                ("テスト macro-F1 / Test macro-F1", figure(model.macro_f1)),
            )
        )
        rule = confidence_line(model.confidence)
        if rule:
            blocks.append(context(rule))
        if data.live is not None and data.live.version == model.version:
            blocks.append(context(live_line(data.live)))
            warning = drift_warning(data.live, model.accuracy)
            if warning:
                blocks.append(section(warning))
        if model.labels:
            names = ", ".join(category_name(label, model.label_set) for label in model.labels)
            blocks.append(context(f"ラベル / Labels ({len(model.labels)}): {names}"))
        loading = [w.worker for w in data.workers if w.version != model.version]
        if data.announced is not None and (loading or not data.workers):
            blocks.append(
                context(
                    f":arrows_counterclockwise: `{escape(model.version)}` が現在のモデルになりました。"
                    f"ワーカーが読み込み中です。 / `{escape(model.version)}` is now current; workers are loading it."
                )
            )
    blocks.append(section(_workers_text(data.workers)))
    return blocks


def _workers_text(workers: list[ServingState]) -> str:
    if not workers:
        return "*ワーカー / Workers*\n稼働中のワーカー情報なし / no worker has reported"
    lines = []
    for worker in workers[:LISTED_WORKERS]:
        line = f"• `{escape(worker.worker)}`: `{escape(worker.version or '—')}` on {escape(worker.device or '?')}"
        if worker.last_error:
            line += f"\n    :warning: {literal(clip(worker.last_error, 200))}"
        lines.append(line)
    return "*ワーカー / Workers*\n" + bounded(lines, len(workers) - len(lines))


def bounded(lines: list[str], hidden: int = 0, limit: int = SECTION_TEXT_MAX - 200) -> str:
    """``lines`` joined, as many as fit in ``limit`` characters, then how many more there are."""
    kept: list[str] = []
    size = 0
    for line in lines:
        if size + len(line) + 1 > limit:
            break
        kept.append(line)
        size += len(line) + 1
    more = hidden + len(lines) - len(kept)
    if more:
        kept.append(f"…他 {more} / and {more} more")
    return "\n".join(kept)


# --- activity, the user's own list, the newsroom settings -----------------------------------------------


def _activity_blocks(data: HomeData) -> list[dict[str, Any]]:
    return [
        header("利用状況 / Activity"),
        fields(
            ("今日の分類 / Classified today", str(data.classified_today)),
            ("直近7日 / Last 7 days", str(data.classified_week)),
            ("👍 正しい / Correct", str(data.feedback.correct)),
            ("👎 違う / Wrong", str(data.feedback.wrong)),
            ("次の再学習を待つ訂正 / Corrections for the next retraining", str(data.feedback.waiting)),
        ),
        context(
            f"日付は {escape(data.timezone)} の暦日 / days are calendar days in {escape(data.timezone)}; "
            "フィードバックは各人の最新の回答 / each person's latest answer"
        ),
    ]


def _recent_blocks(data: HomeData) -> list[dict[str, Any]]:
    blocks = [header("あなたの最近の分類 / Your recent classifications")]
    if not data.recent:
        blocks.append(section("まだありません。/ Nothing yet."))
        return blocks
    lines = [
        f"• {literal(item.title) or '(本文なし / no text)'} → *{literal(item.shown_label)}* "
        f"({_date(item.at, _utc(item.at))})"
        for item in data.recent
    ]
    blocks.append(section(bounded(lines)))
    return blocks


def _newsroom_blocks(data: HomeData) -> list[dict[str, Any]]:
    watched = [f"<#{escape(w.channel)}>" for w in data.watches]
    model = data.announced or served_model(data.workers)
    labels = model.label_set if model is not None else None
    routed = [f"{category_name(r.label, labels)} → <#{escape(r.channel)}>" for r in data.routes]
    return [
        header("ウォッチ中のチャンネルと振り分け / Watched channels and routes"),
        section("*ウォッチ中 / Watched*\n" + _listing(watched, "なし / none")),
        section("*振り分け / Routes*\n" + _listing(routed, "なし / none")),
    ]


def _listing(items: list[str], empty: str) -> str:
    if not items:
        return empty
    shown = [f"• {item}" for item in items[:LISTED_CHANNELS]]
    return bounded(shown, len(items) - len(shown))


# --- admins ---------------------------------------------------------------------------------------------


def training_text(job_id: str | None, progress: TrainingProgress | None) -> str:
    if job_id is None:
        text = "学習は実行されていません。/ No training in progress."
        if progress is not None and progress.phase in ("done", "failed"):
            text += f"\n前回 / Last: `{escape(progress.job_id)}` — {PHASES[progress.phase]}"
        return text
    return progress_line(job_id, progress)


def version_choices(workers: list[ServingState]) -> list[tuple[str, str]]:
    """The registry's versions as the workers last listed them: newest first, each once."""
    seen: dict[str, str] = {}
    for worker in workers:
        for version, summary in worker.versions:
            seen.setdefault(version, summary)
    return sorted(seen.items(), reverse=True)[:SELECT_OPTIONS_MAX]


def _admin_blocks(data: HomeData) -> list[dict[str, Any]]:
    model = data.announced or served_model(data.workers)
    current = model.version if model else None
    elements: list[dict[str, Any]] = [
        button(
            f"再学習 / Retrain ({kind})",
            home_retrain_action(kind),
            kind,
            confirmation=confirm(
                "再学習しますか？ / Retrain?",
                f"type={kind}、既定の設定で学習します。進捗はこのアプリとの DM に表示します。\n"
                f"Trains a {kind} model with the default settings; progress shows in your DM with the app.",
                "学習 / Train",
            ),
        )
        for kind in MODEL_KINDS
    ]
    elements[0]["style"] = "primary"
    elements.append(
        button(
            "ロールバック / Roll back",
            HOME_ROLLBACK_ACTION,
            "previous",
            style="danger",
            confirmation=confirm(
                "ロールバックしますか？ / Roll back?",
                "一つ前のモデルに戻します。/ Makes the previous model current again.",
                "戻す / Roll back",
            ),
        )
    )
    options = [
        option(f"{version}{' (current)' if version == current else ''} {summary}", version)
        for version, summary in version_choices(data.workers)
    ]
    if options:
        elements.append(
            {
                "type": "static_select",
                "action_id": HOME_PROMOTE_ACTION,
                "placeholder": plain("バージョンを採用 / Promote a version"),
                "options": options,
                "confirm": confirm(
                    "採用しますか？ / Promote?",
                    "選んだバージョンを現在のモデルにします。/ Makes the chosen version current.",
                    "採用 / Promote",
                ),
            }
        )
    blocks = [
        divider(),
        header("管理 / Admin"),
        section("*学習 / Training*\n" + training_text(data.training_job, data.training)),
        actions(elements, HOME_ADMIN_BLOCK_ID),
    ]
    if not options:
        blocks.append(context("採用できるバージョンの情報がまだありません / no versions reported by the workers yet"))
    return blocks


# --- editors: the review queue ---------------------------------------------------------------------------


def correction_text(item: PendingCorrection) -> str:
    """A correction as an editor reviews it: the article's title, who proposed what, and the model's answer."""
    answer = item.answer
    title = literal(item.title) or "(見出しなし / no title)"
    predicted, chosen = category_name(answer.predicted, item.labels), category_name(answer.chosen, item.labels)
    return (
        f"*{title}*\n<@{escape(answer.user)}>: モデルの答え / model's answer *{predicted}*"
        f" → 提案 / proposed *{chosen}* ({_date(answer.at, _utc(answer.at))})"
    )


def _review_blocks(data: HomeData) -> list[dict[str, Any]]:
    blocks = [
        divider(),
        header("訂正のレビュー / Corrections to review"),
        context(
            "編集者以外の訂正は、承認されるまで学習に使われません。却下しても削除はされません。/ Corrections by members"
            " who are not editors train no model until an editor accepts them; rejected ones are kept, never deleted."
        ),
    ]
    if not data.reviews:
        blocks.append(section("レビュー待ちの訂正はありません。/ No corrections wait for review."))
    for index, item in enumerate(data.reviews):
        value = review_value(item.answer.user, item.answer.record_id)
        blocks.append(section(correction_text(item)))
        blocks.append(
            actions(
                [
                    button("承認 / Accept", HOME_REVIEW_ACCEPT_ACTION, value, style="primary"),
                    button("却下 / Reject", HOME_REVIEW_REJECT_ACTION, value, style="danger"),
                ],
                review_block_id(index),
            )
        )
    more = data.reviews_total - len(data.reviews)
    if more > 0:
        shown = f"{more}+" if data.reviews_total >= REVIEWS_COUNTED else str(more)
        blocks.append(context(f"…他 {shown} 件がレビュー待ち / and {shown} more waiting"))
    if data.rejected:
        lines = [f"• {correction_text(item)}" for item in data.rejected]
        blocks.append(section("*却下した訂正 (保存済み) / Rejected corrections (kept)*\n" + bounded(lines)))
    return blocks


def unsure_text(item: UnsureArticle) -> str:
    """An unsure article as the editors' list shows it: its title, the model's guess, when it was classified."""
    title = literal(item.title) or "(見出しなし / no title)"
    guess = category_name(item.predicted, item.labels)
    return f"*{title}*\nモデルの推測 / model's guess *{guess}* (自信なし / unsure, {_date(item.at, _utc(item.at))})"


def unsure_select(item: UnsureArticle) -> dict[str, Any]:
    """The select an editor labels an unsure article with: every label of the model that classified it, and a desk
    the model does not have (counted live as outside its labels, never trained on)."""
    labels = list(item.labels)[: SELECT_OPTIONS_MAX - 1]  # the last option is the desk the model does not have
    return {
        "type": "static_select",
        "action_id": HOME_UNSURE_LABEL_ACTION,
        "placeholder": plain("正しいデスク / Which desk?"),
        "options": [
            *(option(clip(item.labels.display(label), 75), label) for label in labels),
            option(OUTSIDE_NAME, OUTSIDE_LABEL),
        ],
    }


def _unsure_blocks(data: HomeData) -> list[dict[str, Any]]:
    blocks = [
        divider(),
        header("今日の自信なし記事 / Today's unsure articles"),
        context(
            "古い順。ラベルは編集者の回答として次の学習に使われ、実測の正解率に数えられます。/ Oldest first. Your label"
            " is stored as your answer: the next training uses it and the live accuracy counts it."
        ),
    ]
    if not data.unsure:
        blocks.append(section("ラベル待ちの記事はありません。/ No unsure article waits for a label today."))
    for item in data.unsure:
        blocks.append(section(unsure_text(item)))
        blocks.append(actions([unsure_select(item)], unsure_block_id(item.record_id)))
    more = data.unsure_total - len(data.unsure)
    if more > 0:
        shown = f"{more}+" if data.unsure_total >= REVIEWS_COUNTED else str(more)
        blocks.append(context(f"…他 {shown} 件 / and {shown} more"))
    return blocks


# --- the view -------------------------------------------------------------------------------------------


def home_view(data: HomeData) -> dict[str, Any]:
    """The Home tab for ``data.user``: a ``views.publish`` view within Slack's limits."""
    blocks: list[dict[str, Any]] = [header("📰 newsbot")]
    if data.notice:
        blocks.append(section(data.notice))
    blocks += _model_blocks(data)
    blocks.append(divider())
    blocks += _activity_blocks(data)
    blocks += _recent_blocks(data)
    blocks += _newsroom_blocks(data)
    blocks.append(divider())
    blocks += [header("使い方 / How to use"), section(home_help(data.classify_response_type))]
    if data.is_editor:
        blocks += _unsure_blocks(data)
        blocks += _review_blocks(data)
    if data.is_admin:
        blocks += _admin_blocks(data)
    blocks.append(
        context(f"更新 / Updated {_date(data.at, time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(data.at)))}")
    )
    return {"type": "home", "blocks": blocks[:HOME_MAX_BLOCKS]}
