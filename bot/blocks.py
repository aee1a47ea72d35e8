"""Block Kit pieces the bot adds to messages: feedback counts, the category select, the training summary."""

from __future__ import annotations

from typing import Any

from common.jobs import FEEDBACK_CHOOSE_ACTION
from common.labels import LIVEDOOR, LabelSet
from common.mrkdwn import escape
from store.feedback import FeedbackCounts

# The context block with the feedback counts on a classification reply; replaced on every click.
COUNTS_BLOCK_ID = "newsbot_feedback_counts"
# The select's block id carries the classification record id: ``feedback_choose:<record id>``.
CHOOSE_BLOCK_PREFIX = "feedback_choose:"


# Slack's limits on a static select: 100 options, 75 characters of text and 150 of value each.
MAX_OPTIONS = 100
OPTION_TEXT_MAX = 75


def shown(labels: LabelSet, label: str) -> str:
    """``label``'s display names (the label itself without names, or when the set does not have it); raw."""
    return labels.display(label) if label in labels else label


def counts_text(counts: FeedbackCounts, labels: LabelSet = LIVEDOOR) -> str:
    text = f"👍 正しい / Correct: {counts.confirmed}　👎 違う / Wrong: {counts.corrected}"
    if counts.corrections:
        chosen = ", ".join(
            f"{escape(shown(labels, label))} ×{n}"
            for label, n in sorted(counts.corrections.items(), key=lambda kv: (-kv[1], kv[0]))
        )
        text += f" (→ {chosen})"
    return text


def with_counts(
    blocks: list[dict[str, Any]], counts: FeedbackCounts, labels: LabelSet = LIVEDOOR
) -> list[dict[str, Any]]:
    """``blocks`` with the counts block added at the end, or replaced where it already is."""
    block = {
        "type": "context",
        "block_id": COUNTS_BLOCK_ID,
        "elements": [{"type": "mrkdwn", "text": counts_text(counts, labels)}],
    }
    kept = [b for b in blocks if b.get("block_id") != COUNTS_BLOCK_ID]
    return [*kept, block]


def _option_text(text: str) -> str:
    return text if len(text) <= OPTION_TEXT_MAX else text[: OPTION_TEXT_MAX - 1] + "…"


def category_select(
    record_id: str, predicted: str, current: str | None, labels: LabelSet = LIVEDOOR
) -> list[dict[str, Any]]:
    """An ephemeral prompt with a select of the other labels of the model that made the classification (the
    record's ``labels``; the user's earlier choice preselected)."""
    options = [
        {"text": {"type": "plain_text", "text": _option_text(shown(labels, label))}, "value": label}
        for label in labels
        if label != predicted
    ][:MAX_OPTIONS]
    select: dict[str, Any] = {
        "type": "static_select",
        "action_id": FEEDBACK_CHOOSE_ACTION,
        "placeholder": {"type": "plain_text", "text": "正しいカテゴリ / Right category"},
        "options": options,
    }
    for option in options:
        if option["value"] == current:
            select["initial_option"] = option
    return [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": (
                    f"予測は *{escape(shown(labels, predicted))}* でした。正しいカテゴリを選んでください。\n"
                    f"The prediction was *{escape(shown(labels, predicted))}*. Which category is right?"
                ),
            },
        },
        {"type": "actions", "block_id": f"{CHOOSE_BLOCK_PREFIX}{record_id}", "elements": [select]},
    ]
