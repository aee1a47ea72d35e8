"""The feedback on a classification reply: its counts block, the category select, the thanks."""

from __future__ import annotations

from typing import Any

from common.labels import LIVEDOOR, OUTSIDE_LABEL, LabelSet
from common.mrkdwn import literal
from store.feedback import FeedbackCounts
from ui.blocks import actions, context, option, plain, section
from ui.ids import COUNTS_BLOCK_ID, FEEDBACK_CHOOSE_ACTION, choose_block_id

# Slack's limits on a static select: 100 options (75 characters of text each: ui.blocks.option).
MAX_OPTIONS = 100
CHOOSE_PROMPT = "正しいカテゴリを選んでください / Choose the right category"


def shown(labels: LabelSet, label: str) -> str:
    """``label``'s display names (the label itself without names, or when the set does not have it); raw."""
    if label == OUTSIDE_LABEL and label not in labels:
        return OUTSIDE_NAME
    return labels.display(label) if label in labels else label


OUTSIDE_NAME = "モデルにないデスク / A desk the model does not have"


def counts_text(counts: FeedbackCounts, labels: LabelSet = LIVEDOOR) -> str:
    text = f"👍 正しい / Correct: {counts.confirmed}　👎 違う / Wrong: {counts.corrected}"
    if counts.corrections:
        chosen = ", ".join(
            f"{literal(shown(labels, label))} ×{n}"
            for label, n in sorted(counts.corrections.items(), key=lambda kv: (-kv[1], kv[0]))
        )
        text += f" (→ {chosen})"
    return text


def with_counts(
    blocks: list[dict[str, Any]], counts: FeedbackCounts, labels: LabelSet = LIVEDOOR
) -> list[dict[str, Any]]:
    """``blocks`` with the counts block added at the end, or replaced where it already is."""
    block = context(counts_text(counts, labels), COUNTS_BLOCK_ID)
    kept = [b for b in blocks if b.get("block_id") != COUNTS_BLOCK_ID]
    return [*kept, block]


def category_select(
    record_id: str, predicted: str, current: str | None, labels: LabelSet = LIVEDOOR
) -> list[dict[str, Any]]:
    """An ephemeral prompt with a select of the other labels of the model that made the classification (the
    record's ``labels``; the user's earlier choice preselected)."""
    options = [option(shown(labels, label), label) for label in labels if label != predicted][:MAX_OPTIONS]
    select: dict[str, Any] = {
        "type": "static_select",
        "action_id": FEEDBACK_CHOOSE_ACTION,
        "placeholder": plain("正しいカテゴリ / Right category"),
        "options": options,
    }
    for choice in options:
        if choice["value"] == current:
            select["initial_option"] = choice
    name = literal(shown(labels, predicted))
    return [
        section(
            f"予測は *{name}* でした。正しいカテゴリを選んでください。\n"
            f"The prediction was *{name}*. Which category is right?"
        ),
        actions([select], choose_block_id(record_id)),
    ]


def thanks(chosen: str, predicted: str, labels: LabelSet = LIVEDOOR) -> str:
    """What the user who answered is told: their answer, as recorded."""
    if chosen == predicted:
        return "ありがとうございます。「正しい」と記録しました。\nThanks! Recorded as correct."
    name = literal(shown(labels, chosen))
    ja = f"ありがとうございます。正しくは *{name}* と記録しました。"
    return f"{ja}\nThanks! Recorded the right category as *{name}*."
