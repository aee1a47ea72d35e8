"""What the worker says in Slack: results and failures, in Japanese and English."""

from __future__ import annotations

from common.jobs import ClassifyResult


def result_text(result: ClassifyResult) -> str:
    """The plain-text reply (also Slack's notification fallback): slug, display names, confidence."""
    lines = [
        f"カテゴリ / Category: *{result.ja} / {result.en}* (`{result.slug}`)",
        f"確信度 / Confidence: {result.confidence:.0%}",
    ]
    if result.title:
        lines.insert(0, f"記事 / Article: {result.title}")
    lines.append(f"_model {result.model_version}_")
    return "\n".join(lines)


def error_text(user_message: str, reference: str | None = None) -> str:
    text = f":warning: {user_message}"
    if reference:
        text += f"\n(参照 / reference: `{reference}`)"
    return text
