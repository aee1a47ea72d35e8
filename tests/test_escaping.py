"""Issue 17, item 4: every text built from a label, title, user string or error reaches Slack through the one escape.

One table, :data:`BUILDERS`, drives every public function of :mod:`ui` that puts an outside string in a message,
once per hostile value of :data:`HOSTILE` (as the label, the display names, the title, the error, what an admin
typed); :data:`NO_OUTSIDE_TEXT` names the functions that take none, each with the reason. The table is checked
complete against :mod:`ui`'s modules, so a new builder fails here until it is driven or its reason is written down.
Texts built outside :mod:`ui` (the bot's refusals of what was typed) are driven by :data:`OTHER_BUILDERS`.

What a hostile value may not do in any text of the result: notify (``<!channel>``, ``<@U1>``), open or close a code
span (a raw backtick: inside a code span it would end it, outside it would start one), or be read as an entity
(``&lt;`` must show as written). ``*x*`` is allowed to read bold (Slack has no escape for it; it harms nothing).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

import ui
from bot.newsroom import parse_newsroom
from bot.options import parse_retrain
from common.articles import Article
from common.audience import Audience
from common.exceptions import NewsbotError
from common.labels import LabelSet
from common.mrkdwn import BACKTICK_STANDIN, code, link, literal
from newsmodel.prediction import Prediction
from store.activity import RecentClassification
from store.answers import FeedbackAnswer
from store.feedback import FeedbackCounts, FeedbackTally, PendingCorrection, UnsureArticle
from store.newsroom import Route
from store.retraining import TrainingProgress
from store.serving import ServingState
from store.trust import MemberTally
from ui import admin, feedback, home, newsroom, progress, replies, reports, retrain
from worker.pipeline import ArticleResult

HOSTILE = ("<!channel>", "a`b", "<@U1>", "*x*", "&lt;", "<!here|x>", "x&y>", "`")
# Hostile values that show unchanged (and harmless): checked only for what they may not add.
HARMLESS = {"*x*"}
THRESHOLD = 0.6


def label_set(h: str) -> LabelSet:
    """``h`` as a label without display names, and as the display names of another label."""
    return LabelSet((h, "ok", "other"), names={"ok": {"ja": h, "en": f"{h} en"}})


def article(h: str, confident: bool = True, url: str | None = None) -> ArticleResult:
    scores = {h: 0.9, "ok": 0.06, "other": 0.04} if confident else {"ok": 0.4, h: 0.35, "other": 0.25}
    return ArticleResult(
        url=url,
        article=Article(title=h, body="本文"),
        prediction=Prediction(scores, unsure=not confident, threshold=THRESHOLD),
        model_version="v1",
        record_id="r1",
        labels=label_set(h),
    )


def route(h: str, warned: bool = False) -> Route:
    return Route(label=h, channel="C0DESK", by="UADMIN", at=0.0, warned=warned)


def counts(h: str) -> FeedbackCounts:
    return FeedbackCounts(confirmed=1, corrections={h: 2, "ok": 1})


def serving(h: str) -> ServingState:
    return ServingState(
        worker="w1",
        version="v1",
        last_error=h,
        model_type="bert",
        labels=(h, "ok", "other"),
        label_names={"ok": {"ja": h, "en": h}},
    )


@dataclass(frozen=True)
class Outcome:
    """A finished training, as ``ui.retrain.result_text`` reads one."""

    labels: LabelSet
    version: str = "v2"
    promoted: bool = True
    reason: str = "better"
    metrics: Mapping[str, Any] = field(default_factory=lambda: {"accuracy": 0.9})
    previous_version: str | None = "v1"
    previous_metrics: Mapping[str, Any] | None = None
    extra_examples_used: int = 1
    extra_examples_skipped: int = 0
    train_seconds: float = 1.0


def home_data(h: str) -> home.HomeData:
    return home.HomeData(
        user="U1",
        is_admin=True,
        workers=[serving(h)],
        classified_today=1,
        classified_week=2,
        feedback=FeedbackTally(1, 2, 3),
        recent=[
            RecentClassification("r1", h, h, 0.0, label_set(h)),
            RecentClassification("r2", h, "ok", 0.0, label_set(h)),
        ],
        watches=[],
        routes=[route(h), route("ok")],
    )


# Every ui function that puts an outside string in a message, called with one hostile value.
BUILDERS: dict[str, Callable[[str], object]] = {
    # ui.newsroom
    "ui.newsroom.route_list": lambda h: newsroom.route_list([route(h), route(h, warned=True)]),
    "ui.newsroom.route_checking": lambda h: newsroom.route_checking(h, "C0DESK"),
    "ui.newsroom.route_cleared": lambda h: [newsroom.route_cleared(h, True), newsroom.route_cleared(h, False)],
    "ui.newsroom.route_set": lambda h: [newsroom.route_set(h, "C0DESK", True), newsroom.route_set(h, "C0DESK", False)],
    "ui.newsroom.route_refusal": lambda h: newsroom.route_refusal("C0DESK", *newsroom.desk_unknown(h)),
    "ui.newsroom.desk_unknown": lambda h: newsroom.desk_unknown(h),
    "ui.newsroom.not_a_channel": lambda h: newsroom.not_a_channel(h),
    "ui.newsroom.unknown_label": lambda h: newsroom.unknown_label(h, [h, "ok"]),
    "ui.newsroom.unrouted_note": lambda h: newsroom.unrouted_note(article(h, confident=False), route(h)),
    "ui.newsroom.with_notes": lambda h: newsroom.with_notes(
        replies.reply_message([article(h)]), [newsroom.unrouted_note(article(h), route(h))]
    ),
    "ui.newsroom.desk_message": lambda h: newsroom.desk_message(article(h), "C1", "https://slack.test/archives/C1/p1"),
    "ui.newsroom.desk_warning": lambda h: newsroom.desk_warning(route(h), h),
    "ui.newsroom.allow_wider_risk": lambda h: [
        newsroom.allow_wider_risk(h, "C0DESK", Audience(private=False, external=x)) for x in (False, True)
    ],
    "ui.newsroom.held_note": lambda h: newsroom.held_note(h),
    "ui.home.correction_text": lambda h: [
        home.correction_text(
            PendingCorrection(FeedbackAnswer("r1", "UMEMBER", predicted, chosen, "v1", 0.0), h, label_set(h))
        )
        for predicted, chosen in ((h, "ok"), ("ok", h))
    ],
    "ui.home.unsure_text": lambda h: [
        home.unsure_text(UnsureArticle("r1", h, predicted, label_set(h), 0.0)) for predicted in (h, "ok")
    ],
    "ui.retrain.corrections_lines": lambda h: retrain.corrections_lines({"UMEMBER": MemberTally(used=1, held=2)}),
    "ui.newsroom.held_warning": lambda h: [
        newsroom.held_warning(route(h), "C0SRC", None, None),
        newsroom.held_warning(route(h), "C0SRC", Audience(private=True, external=False), Audience(False, False)),
    ],
    "ui.newsroom.route_ended": lambda h: [
        newsroom.route_ended(route(h), what, paused) for what in ("archived", "deleted") for paused in (True, False)
    ],
    "ui.newsroom.desk_audience_changed": lambda h: [
        newsroom.desk_audience_changed(replace(route(h), allow_wider=w), Audience(False, True), held)
        for w in ("", "internal")
        for held in (True, False)
    ],
    # ui.replies
    "ui.replies.reply_message": lambda h: replies.reply_message(
        [article(h), article(h, confident=False), article(h, url="https://news.example.jp/a/1")]
    ),
    "ui.replies.result_line": lambda h: [
        replies.result_line(article(h)),
        replies.result_line(article(h, confident=False)),
    ],
    "ui.replies.error_text": lambda h: replies.error_text(h, reference=h),
    "ui.replies.error_message": lambda h: replies.error_message(h, reference=h),
    # ui.feedback
    "ui.feedback.counts_text": lambda h: feedback.counts_text(counts(h), label_set(h)),
    "ui.feedback.with_counts": lambda h: feedback.with_counts([], counts(h), label_set(h)),
    "ui.feedback.category_select": lambda h: [
        feedback.category_select("r1", h, "ok", label_set(h)),
        feedback.category_select("r1", "ok", h, label_set(h)),
    ],
    "ui.feedback.thanks": lambda h: [feedback.thanks(h, "ok", label_set(h)), feedback.thanks("ok", h, label_set(h))],
    # ui.home
    "ui.home.category_name": lambda h: [home.category_name(h, label_set(h)), home.category_name("ok", label_set(h))],
    "ui.home.home_view": lambda h: home.home_view(home_data(h)),
    # ui.admin
    "ui.admin.serving_lines": lambda h: admin.serving_lines([serving(h)]),
    "ui.admin.status_text": lambda h: admin.status_text([], [serving(h)], [], [], 0),
    "ui.admin.pinned_model": lambda h: admin.pinned_model(h),
    "ui.admin.unregistered_model": lambda h: admin.unregistered_model(h),
    "ui.admin.rollback_refused": lambda h: admin.rollback_refused(h, "利用者向けの文 / our words"),
    # ui.retrain, ui.reports, ui.progress
    "ui.retrain.train_options": lambda h: retrain.train_options("bert", h, None, False),
    "ui.retrain.editor_sets_lines": lambda h: retrain.editor_sets_lines(
        {"recent_editor_labels": {"examples": 40, "accuracy": 0.5, "current_accuracy": 0.9, "current_version": h}}
    ),
    "ui.retrain.result_text": lambda h: retrain.result_text("header", Outcome(labels=label_set(h))),
    "ui.reports.labels_line": lambda h: reports.labels_line(label_set(h)),
    "ui.reports.version_line": lambda h: reports.version_line("v1", None, h, None),
    "ui.reports.progress_text": lambda h: reports.progress_text(
        phase=h, step=1, total_steps=2, epoch=None, elapsed_s=None, eta_s=None, metrics=None, message=h
    ),
    "ui.progress.progress_line": lambda h: progress.progress_line("job1", TrainingProgress(job_id="job1", phase=h)),
}

# Their first argument is our own words (an exception's user_message, whose code spans are meant): only ``&``,
# ``<`` and ``>`` are escaped there, so a backtick in it is kept.
OWN_WORDS_FIRST = {"ui.replies.error_text", "ui.replies.error_message"}

# The ui functions that put no outside string in a message, and why.
_BUILT = "takes mrkdwn already built by the builders above (their callers escape)"
_IDS = "Slack's channel and user ids, and the bot's own job ids and version names (checked folder names)"
_NUMBERS = "numbers and our own words only"
NO_OUTSIDE_TEXT: dict[str, str] = {
    **{f"ui.blocks.{name}": _BUILT for name in ("actions", "button", "clip", "confirm", "context", "divider")},
    **{f"ui.blocks.{name}": _BUILT for name in ("fields", "header", "mrkdwn", "option", "plain", "section")},
    "ui.blocks.block_text_chars": "counts characters, builds nothing",
    **{
        f"ui.commands.{name}": "the command table's own words"
        for name in ("classify_usage", "command", "home_help", "newsroom_usage", "retrain_usage")
    },
    **{f"ui.commands.{name}": "the command table's own words" for name in ("subcommand_names", "usage", "usage_hint")},
    **{
        f"ui.ids.{name}": "block and action ids, not text"
        for name in (
            "article_error_block_id",
            "choose_block_id",
            "unsure_block_id",
            "unsure_record",
            "review_block_id",
            "review_value",
            "reviewed",
            "chosen_record",
            "feedback_block_id",
            "home_retrain_action",
            "meta_block_id",
            "pick_action_id",
            "pick_value",
            "picked",
            "result_block_id",
        )
    },
    "ui.feedback.shown": "the raw display name; every caller escapes it (driven through them above)",
    "ui.home.bounded": _BUILT,
    "ui.home.gather": "reads Redis; what it gathers is shown by home_view (driven above)",
    "ui.home.served_model": "picks a model, builds no text",
    "ui.home.version_choices": "lists versions, builds no text (home_view shows them)",
    "ui.home.training_text": _IDS,
    "ui.admin.training_lines": _IDS,
    "ui.admin.rollback_done": _IDS,
    "ui.admin.making_current": _IDS,
    "ui.admin.home_making_current": _IDS,
    "ui.newsroom.watching_on": _IDS,
    "ui.newsroom.watched_audience_note": _IDS,
    "ui.admin.review_done": _IDS,
    "ui.newsroom.watched_audience_changed": _IDS,
    "ui.newsroom.desk_audience_note": _IDS,
    "ui.newsroom.watch_ended": _IDS,
    "ui.newsroom.audience_words": _NUMBERS,
    "ui.newsroom.watching_off": _IDS,
    "ui.newsroom.watch_list": _IDS,
    "ui.replies.bar": _NUMBERS,
    "ui.replies.is_unsure": "a comparison, builds no text",
    "ui.replies.dropped_note": _NUMBERS,
    "ui.replies.left_out_note": _NUMBERS,
    "ui.reports.metric": "reads a number",
    "ui.reports.confidence_line": _NUMBERS,
    "ui.reports.live_line": _NUMBERS,
    "ui.home.unsure_select": "options are plain_text (Slack shows them as written) and ids",
    "ui.reports.drift_warning": _NUMBERS,
    "ui.reports.metrics_line": _NUMBERS,
    "ui.progress.duration": _NUMBERS,
    "ui.progress.figure": _NUMBERS,
    "ui.texts.not_in_channel": _BUILT,
    "ui.texts.member_rate_limited": _NUMBERS,
    "ui.retrain.queued_text": _IDS + "; its options are train_options' text (driven above)",
    "ui.retrain.retrain_header": _IDS + "; its options are train_options' text (driven above)",
    "ui.retrain.home_queued_text": _IDS,
    "ui.retrain.cancel_text": _IDS,
    "ui.retrain.lost_text": _IDS,
    "ui.retrain.stopped_text": _IDS,
    "ui.retrain.failed_text": "never shows the exception, only advice chosen by its type and our reference id",
    "ui.retrain.promote_button": _IDS,
    "ui.retrain.report_blocks": _BUILT,
}


def _refusal(call: Callable[[], object]) -> str:
    try:
        call()
    except NewsbotError as exc:
        return exc.user_message
    raise AssertionError("not refused")


# Texts built outside ui from what a user typed: the bot's refusals.
OTHER_BUILDERS: dict[str, Callable[[str], object]] = {
    "bot.newsroom.parse_newsroom (unknown label)": lambda h: _refusal(
        lambda: parse_newsroom(f"route {h} C0DESK", ["ok", f"{h}-known"])
    ),
    "bot.newsroom.parse_newsroom (not a channel)": lambda h: _refusal(lambda: parse_newsroom(f"route ok {h}", ["ok"])),
    "bot.options.parse_retrain (epochs)": lambda h: _refusal(lambda: parse_retrain(f"epochs={h}")),
    "bot.options.parse_retrain (base)": lambda h: _refusal(lambda: parse_retrain(f"base={h}")),
    "bot.options.parse_retrain (type)": lambda h: _refusal(lambda: parse_retrain(f"type={h}")),
    "bot.options.parse_retrain (option)": lambda h: _refusal(lambda: parse_retrain(f"{h}=1")),
    "bot.options.parse_retrain (word)": lambda h: _refusal(lambda: parse_retrain(h)),
    "bot.options.parse_retrain (version)": lambda h: _refusal(lambda: parse_retrain(f"rollback {h}")),
}


def ui_functions() -> set[str]:
    """Every public function defined in a module of :mod:`ui`."""
    found = set()
    for info in pkgutil.iter_modules(ui.__path__):
        module = importlib.import_module(f"ui.{info.name}")
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if function.__module__ == module.__name__ and not name.startswith("_"):
                found.add(f"{module.__name__}.{name}")
    return found


# Block Kit keys whose strings Slack never shows as mrkdwn: a button's or option's value, the ids.
_NOT_SHOWN = {"value", "action_id", "block_id", "callback_id"}


def texts(value: object) -> Iterator[str]:
    """Every mrkdwn string in a builder's result (a text, a tuple of texts, Block Kit dicts and lists); not
    ``plain_text`` objects (Slack shows them as written, nothing in them is markup) nor values and ids."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        if value.get("type") == "plain_text":
            return
        for key, item in value.items():
            if key not in _NOT_SHOWN:
                yield from texts(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from texts(item)


def assert_inert(result: object, hostile: str, keeps_backticks: bool = False) -> None:
    shown = list(texts(result))
    assert shown, "the builder returned no text"
    for text in shown:
        assert "<!channel" not in text and "<!here" not in text and "<@U1" not in text, text
        if hostile in HARMLESS or (keeps_backticks and "`" in hostile):
            continue
        if hostile == "`":  # a lone backtick: every code span of the text is still closed
            assert text.replace("```", "").count("`") % 2 == 0, f"unbalanced backticks in {text!r}"
            continue
        assert hostile not in text, f"{hostile!r} raw in {text!r}"


def test_the_table_names_every_ui_function() -> None:
    """A new ui function fails here until it is driven with hostile strings or its reason is written down."""
    named = set(BUILDERS) | set(NO_OUTSIDE_TEXT)
    assert not set(BUILDERS) & set(NO_OUTSIDE_TEXT)
    assert ui_functions() - named == set(), "drive these in BUILDERS, or say why in NO_OUTSIDE_TEXT"
    assert named - ui_functions() == set(), "these are no longer ui functions"


@pytest.mark.parametrize("hostile", HOSTILE)
@pytest.mark.parametrize("builder", sorted(BUILDERS))
def test_no_ui_builder_lets_a_hostile_string_through(builder: str, hostile: str) -> None:
    assert_inert(BUILDERS[builder](hostile), hostile, keeps_backticks=builder in OWN_WORDS_FIRST)


@pytest.mark.parametrize("hostile", HOSTILE)
@pytest.mark.parametrize("builder", sorted(OTHER_BUILDERS))
def test_the_bots_refusals_do_not_let_what_was_typed_through(builder: str, hostile: str) -> None:
    assert_inert(OTHER_BUILDERS[builder](hostile), hostile)


def test_a_label_shows_as_written_with_a_lookalike_for_its_backtick() -> None:
    assert code("a`b") == f"`a{BACKTICK_STANDIN}b`"
    assert code("<!channel>") == "`&lt;!channel&gt;`"
    assert literal("&lt; `x`") == f"&amp;lt; {BACKTICK_STANDIN}x{BACKTICK_STANDIN}"
    assert link("https://x.test/", "a`b") == f"<https://x.test/|a{BACKTICK_STANDIN}b>"
    assert newsroom.route_cleared("a`b", True).count("`") % 2 == 0
    assert replace(route("x"), label="a`b").label == "a`b"  # the stored label itself is never changed
