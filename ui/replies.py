"""What the worker says in Slack: results and failures, in Japanese and English, as Block Kit.

Every reply also has a plain ``text`` (Slack's notification
fallback) naming the label in backticks and the confidence. Labels are shown with the display names of the model
that predicted them (``政治 / Politics``; the label alone when it has none), escaped like everything else that
comes from a newsroom's files. One message answers one Slack message: a single
article, or one section per link (each with its own feedback buttons whose ``value`` is that article's record id).

Everything from outside (page titles, URLs, error details) goes through :mod:`common.mrkdwn`: titles are cut to
:data:`~common.mrkdwn.TITLE_MAX_CHARS` and then escaped, so no page can post a live ``<!channel>``. A reply keeps
within Slack's limits by a budget (:data:`MAX_REPLY_BLOCKS` blocks, :data:`MAX_SECTION_CHARS` per text,
:data:`MAX_BLOCKS_TEXT_CHARS` of block text, :data:`MAX_TEXT_CHARS` of ``text``); articles that do not fit are
left out of the reply, and the reply says how many.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from common.mrkdwn import code, escape, link, literal, one_line, truncate
from ui.blocks import Block, actions, block_text_chars, button, context, divider, section
from ui.ids import (
    ERROR_BLOCK_ID,
    FEEDBACK_CORRECT_ACTION,
    FEEDBACK_WRONG_ACTION,
    article_error_block_id,
    feedback_block_id,
    meta_block_id,
    pick_action_id,
    pick_value,
    result_block_id,
)


class ArticleResult(Protocol):
    """What a reply shows of one article (the worker's ``worker.pipeline.ArticleResult``)."""

    @property
    def url(self) -> str | None: ...

    @property
    def record_id(self) -> str | None: ...

    @property
    def model_version(self) -> str: ...

    @property
    def classified(self) -> bool: ...

    @property
    def label(self) -> str: ...

    @property
    def confidence(self) -> float: ...

    @property
    def unsure(self) -> bool: ...

    @property
    def title(self) -> str | None: ...

    @property
    def user_error(self) -> str: ...

    def display(self, label: str | None = None) -> str: ...

    def name(self, label: str, language: str) -> str: ...

    def top(self, k: int) -> list[tuple[str, float]]: ...


BAR_WIDTH = 10
TOP_K = 3
# Slack allows 50 blocks per message. A reply keeps one for its notes (links skipped, articles left out) and one
# for the feedback counts the bot adds to it on the first click (ui.feedback.with_counts).
SLACK_MAX_BLOCKS = 50
MAX_REPLY_BLOCKS = SLACK_MAX_BLOCKS - 1
_ARTICLE_BLOCKS = MAX_REPLY_BLOCKS - 1
# Slack's limit on one text object (a section's text).
MAX_SECTION_CHARS = 3000
# All text in a reply's blocks; Slack answers msg_blocks_too_long from about 12,000 characters on.
MAX_BLOCKS_TEXT_CHARS = 10_000
# The plain ``text``: Slack advises at most 4,000 characters (and truncates at 40,000).
MAX_TEXT_CHARS = 4000
# Room kept in both budgets for the notes (links skipped, articles left out, model versions).
_NOTES_CHARS = 800
# An error's detail shown to the user at most (our own words, but cut all the same).
_ERROR_CHARS = 1000


def bar(probability: float, width: int = BAR_WIDTH) -> str:
    """A small text bar: ``███████░░░`` for 0.7."""
    filled = max(0, min(width, round(probability * width)))
    return "█" * filled + "░" * (width - filled)


def is_unsure(result: ArticleResult) -> bool:
    """The served model's decision (:func:`newsmodel.confidence.judge`): its rule, or CONFIDENCE_THRESHOLD's bar."""
    return result.unsure


def _name(result: ArticleResult, label: str | None = None) -> str:
    """The label's display names, escaped: ``日本語名 / English name`` (``Movies &amp; Entertainment``), one
    name when the two are the same, the label itself without names."""
    return literal(result.display(label))


def _code(label: str) -> str:
    """The label itself, in backticks, escaped."""
    return code(label)


def _same(result: ArticleResult, label: str) -> bool:
    """Whether showing the label in backticks after its names would only repeat it."""
    return result.display(label) == label


def _label_with_names(result: ArticleResult, label: str | None = None) -> str:
    """``*names*`` followed by the label in backticks (only the label when it has no names)."""
    label = result.label if label is None else label
    names = f"*{_name(result, label)}*"
    return names if _same(result, label) else f"{names} ({_code(label)})"


def result_line(result: ArticleResult) -> str:
    """One plain line per article for ``text``: the label in backticks and the confidence."""
    if is_unsure(result):
        others = ", ".join(f"{literal(result.name(s, 'ja'))} {p:.0%}" for s, p in result.top(TOP_K)[1:])
        return (
            f"自信がありません / Not sure: たぶん / maybe {_label_with_names(result)} "
            f"{result.confidence:.0%}; 他の候補 / other candidates: {others}"
        )
    return f"カテゴリ / Category: {_label_with_names(result)} 確信度 / Confidence: {result.confidence:.0%}"


def _scores_mrkdwn(result: ArticleResult) -> str:
    rows = []
    for label, p in result.top(TOP_K):
        shown = _name(result, label) if _same(result, label) else f"{_name(result, label)} ({_code(label)})"
        rows.append(f"`{bar(p)}` {p:>4.0%}  {shown}")
    return "\n".join(rows)


def _title(item: ArticleResult) -> str | None:
    """The article's title for a message: one line, cut to TITLE_MAX_CHARS; raw (escape or link it)."""
    return one_line(item.title) if item.title else None


def _error_detail(item: ArticleResult) -> str:
    return f":warning: {escape(item.user_error, _ERROR_CHARS)}"


def _section(text: str, block_id: str) -> Block:
    # Every outside piece is cut before or while it is escaped (title 150 characters, error detail 1,000, link
    # URL 1,000), so a section stays far below the limit; this cut is only a last guard.
    return section(truncate(text, MAX_SECTION_CHARS), block_id)


def _article_blocks(item: ArticleResult, index: int) -> list[Block]:
    heading = link(item.url) if item.url else ""
    if not item.classified:
        text = "\n".join(part for part in (heading, _error_detail(item)) if part)
        return [_section(text, article_error_block_id(index))]
    title = _title(item)
    if title:
        heading = link(item.url, title) if item.url else f"*{literal(title)}*"
    if is_unsure(item):
        verdict = (
            f":thinking_face: *自信がありません / I am not sure* (確信度 / confidence {item.confidence:.0%}). "
            "候補 / Top candidates — どのデスク？ボタンで教えてください / which desk? Tell me with a button below:"
        )
    else:
        verdict = f"{_label_with_names(item)}\n確信度 / Confidence: *{item.confidence:.0%}*"
    body = "\n".join(part for part in (heading, verdict, _scores_mrkdwn(item)) if part)
    blocks: list[Block] = [
        _section(body, result_block_id(index)),
        context(f"model {code(item.model_version)} · ref `{item.record_id}`", meta_block_id(index)),
    ]
    if item.record_id:
        which = _which_desk(item, item.record_id) if is_unsure(item) else []
        blocks.append(
            actions(
                [
                    *which,
                    button("正しい / Correct", FEEDBACK_CORRECT_ACTION, item.record_id, style="primary"),
                    button("違う / Wrong", FEEDBACK_WRONG_ACTION, item.record_id),
                ],
                feedback_block_id(index),
            )
        )
    return blocks


# Slack's limit on a button's text.
_BUTTON_CHARS = 75


def _which_desk(item: ArticleResult, record_id: str) -> list[dict[str, Any]]:
    """An unsure answer asks the editors: one button per top label ("which desk?"); a click is a labelled example,
    stored through the same feedback path as the category select."""
    buttons = []
    for rank, (label, _p) in enumerate(item.top(TOP_K)):
        text = item.display(label)
        text = text if len(text) <= _BUTTON_CHARS else text[: _BUTTON_CHARS - 1] + "…"
        buttons.append(button(text, pick_action_id(rank), pick_value(record_id, label)))
    return buttons


def _text_line(item: ArticleResult) -> str:
    """The article's line in the plain ``text``."""
    if item.classified:
        title = _title(item)
        line = result_line(item)
        return f"{literal(title)}: {line}" if title else line
    detail = _error_detail(item)
    return f"{link(item.url)}\n{detail}" if item.url else detail


def dropped_note(dropped: int, max_links: int) -> str:
    return (
        f"リンクは1メッセージにつき{max_links}件までです。残りの{dropped}件は読みませんでした。\n"
        f"Only {max_links} links per message are read; {dropped} more were skipped."
    )


def left_out_note(left_out: int, total: int) -> str:
    return (
        f"返信に収まらないため、{total}件中{left_out}件の結果は載せていません。\n"
        f"{left_out} of {total} results did not fit in this reply and were left out."
    )


def reply_message(items: Sequence[ArticleResult], dropped: int = 0, max_links: int = 0) -> dict[str, Any]:
    """``text`` and ``blocks`` of the reply to one Slack message (one or more articles), within Slack's limits.

    Articles are added in order while they fit the block budget; the plain ``text`` lists the shown ones while
    they fit its own budget. What is left out of either is counted in a note.
    """
    blocks: list[dict[str, Any]] = []
    block_chars = 0
    shown = 0
    for index, item in enumerate(items):
        piece = ([divider()] if index else []) + _article_blocks(item, index)
        chars = block_text_chars(piece)
        if len(blocks) + len(piece) > _ARTICLE_BLOCKS or block_chars + chars > MAX_BLOCKS_TEXT_CHARS - _NOTES_CHARS:
            break
        blocks.extend(piece)
        block_chars += chars
        shown += 1
    lines: list[str] = []
    text_chars = 0
    for index, item in enumerate(items[:shown]):
        line = _text_line(item)
        line = f"{index + 1}. {line}" if len(items) > 1 else line
        if text_chars + len(line) + 1 > MAX_TEXT_CHARS - _NOTES_CHARS:
            break
        lines.append(line)
        text_chars += len(line) + 1
    notes: list[str] = []
    if dropped:
        notes.append(dropped_note(dropped, max_links))
    if shown < len(items):
        notes.append(left_out_note(len(items) - shown, len(items)))
    if notes:
        blocks.append(context("\n".join(notes)))
    if len(lines) < shown:  # in the blocks, but past the text's budget
        lines.append(f"ほか{shown - len(lines)}件 / {shown - len(lines)} more")
    if shown < len(items):
        lines.append(left_out_note(len(items) - shown, len(items)))
    if dropped:
        lines.append(dropped_note(dropped, max_links))
    versions = sorted({i.model_version for i in items if i.classified})
    if versions:
        lines.append(escape(f"model {', '.join(versions)}"))
    return {"text": "\n".join(lines), "blocks": blocks}


def error_text(user_message: str, reference: str | None = None) -> str:
    text = f":warning: {escape(user_message, _ERROR_CHARS)}"
    if reference:
        text += f"\n(参照 / reference: {code(reference)})"
    return text


def error_message(user_message: str, reference: str | None = None) -> dict[str, Any]:
    text = error_text(user_message, reference)
    return {"text": text, "blocks": [_section(text, ERROR_BLOCK_ID)]}
