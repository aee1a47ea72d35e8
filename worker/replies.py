"""What the worker says in Slack: results and failures, in Japanese and English, as Block Kit.

Blocks are built with slack_sdk's block models, which enforce Slack's limits (text lengths, ids) when the
message is serialised. Every reply also has a plain ``text`` (Slack's notification fallback) naming the
slug in backticks and the confidence. One message answers one Slack message: a single article, or one
section per link (each with its own feedback buttons whose ``value`` is that article's record id).
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from common.jobs import FEEDBACK_CORRECT_ACTION, FEEDBACK_WRONG_ACTION
from common.labels import category
from worker.pipeline import ArticleResult

BAR_WIDTH = 10
TOP_K = 3
# Slack allows 50 blocks per message; each article takes three, so at most this many get blocks.
MAX_ARTICLE_SECTIONS = 14
_SECTION_TEXT_MAX = 3000


def bar(probability: float, width: int = BAR_WIDTH) -> str:
    """A small text bar: ``███████░░░`` for 0.7."""
    filled = max(0, min(width, round(probability * width)))
    return "█" * filled + "░" * (width - filled)


def is_unsure(result: ArticleResult, threshold: float) -> bool:
    return result.confidence < threshold


def _escape(text: str) -> str:
    """Slack mrkdwn needs only ``&``, ``<`` and ``>`` escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str, label: str | None) -> str:
    safe_url = url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
    return f"<{safe_url}|{_escape(label)}>" if label else f"<{safe_url}>"


def result_line(result: ArticleResult, threshold: float) -> str:
    """One plain line per article for ``text``: the slug in backticks and the confidence."""
    cat = result.category
    if is_unsure(result, threshold):
        others = ", ".join(f"{category(s).ja} {p:.0%}" for s, p in result.top(TOP_K)[1:])
        return (
            f"自信がありません / Not sure: たぶん / maybe *{cat.ja} / {cat.en}* (`{cat.slug}`) "
            f"{result.confidence:.0%}; 他の候補 / other candidates: {others}"
        )
    return f"カテゴリ / Category: *{cat.ja} / {cat.en}* (`{cat.slug}`) 確信度 / Confidence: {result.confidence:.0%}"


def _scores_mrkdwn(result: ArticleResult) -> str:
    rows = []
    for slug, p in result.top(TOP_K):
        cat = category(slug)
        rows.append(f"`{bar(p)}` {p:>4.0%}  {cat.ja} / {cat.en} (`{slug}`)")
    return "\n".join(rows)


def _article_blocks(item: ArticleResult, threshold: float, index: int) -> list[Block]:
    heading = _link(item.url, None) if item.url else ""
    if not item.classified:
        text = "\n".join(part for part in (heading, f":warning: {_escape(item.user_error)}") if part)
        return [SectionBlock(text=MarkdownTextObject(text=text[:_SECTION_TEXT_MAX]), block_id=f"error-{index}")]
    if item.title:
        heading = _link(item.url, item.title) if item.url else f"*{_escape(item.title)}*"
    cat = item.category
    if is_unsure(item, threshold):
        verdict = (
            f":thinking_face: *自信がありません / I am not sure* (確信度 / confidence {item.confidence:.0%}). "
            "候補 / Top candidates:"
        )
    else:
        verdict = f"*{cat.ja} / {cat.en}* (`{cat.slug}`)\n確信度 / Confidence: *{item.confidence:.0%}*"
    body = "\n".join(part for part in (heading, verdict, _scores_mrkdwn(item)) if part)
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=body[:_SECTION_TEXT_MAX]), block_id=f"result-{index}"),
        ContextBlock(
            elements=[MarkdownTextObject(text=f"model `{item.model_version}` · ref `{item.record_id}`")],
            block_id=f"meta-{index}",
        ),
    ]
    if item.record_id:
        blocks.append(
            ActionsBlock(
                block_id=f"feedback-{index}",
                elements=[
                    ButtonElement(
                        text=PlainTextObject(text="正しい / Correct"),
                        action_id=FEEDBACK_CORRECT_ACTION,
                        value=item.record_id,
                        style="primary",
                    ),
                    ButtonElement(
                        text=PlainTextObject(text="違う / Wrong"),
                        action_id=FEEDBACK_WRONG_ACTION,
                        value=item.record_id,
                    ),
                ],
            )
        )
    return blocks


def dropped_note(dropped: int, max_links: int) -> str:
    return (
        f"リンクは1メッセージにつき{max_links}件までです。残りの{dropped}件は読みませんでした。\n"
        f"Only {max_links} links per message are read; {dropped} more were skipped."
    )


def reply_message(items: list[ArticleResult], threshold: float, dropped: int = 0, max_links: int = 0) -> dict[str, Any]:
    """``text`` and ``blocks`` of the reply to one Slack message (one or more articles)."""
    lines: list[str] = []
    blocks: list[Block] = []
    for index, item in enumerate(items):
        if item.classified:
            line = result_line(item, threshold)
            if item.title:
                line = f"{item.title}: {line}"
        else:
            line = f"{item.url}\n:warning: {item.user_error}" if item.url else f":warning: {item.user_error}"
        lines.append(f"{index + 1}. {line}" if len(items) > 1 else line)
        if index < MAX_ARTICLE_SECTIONS:
            if index:
                blocks.append(DividerBlock())
            blocks.extend(_article_blocks(item, threshold, index))
    if dropped:
        lines.append(dropped_note(dropped, max_links))
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=dropped_note(dropped, max_links))]))
    versions = sorted({i.model_version for i in items if i.classified})
    if versions:
        lines.append(f"model {', '.join(versions)}")
    return {"text": "\n".join(lines), "blocks": [b.to_dict() for b in blocks]}


def error_text(user_message: str, reference: str | None = None) -> str:
    text = f":warning: {user_message}"
    if reference:
        text += f"\n(参照 / reference: `{reference}`)"
    return text


def error_message(user_message: str, reference: str | None = None) -> dict[str, Any]:
    text = error_text(user_message, reference)
    return {"text": text, "blocks": [SectionBlock(text=MarkdownTextObject(text=text[:_SECTION_TEXT_MAX])).to_dict()]}
