"""Block Kit builders shared by the views: plain JSON dicts, as Slack's Web API takes them.

Texts given to these builders are already mrkdwn: escape every outside string with :mod:`common.mrkdwn` first.
"""

from __future__ import annotations

from typing import Any

# Slack's limits on one text object.
SECTION_TEXT_MAX = 3000
FIELD_TEXT_MAX = 2000
HEADER_TEXT_MAX = 150
OPTION_TEXT_MAX = 75

Block = dict[str, Any]


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain(text: str) -> dict[str, str]:
    return {"type": "plain_text", "text": text}


def mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def section(text: str, block_id: str | None = None) -> Block:
    """A mrkdwn section, cut to Slack's limit."""
    block: Block = {"type": "section", "text": mrkdwn(clip(text, SECTION_TEXT_MAX))}
    if block_id is not None:
        block["block_id"] = block_id
    return block


def header(text: str) -> Block:
    return {"type": "header", "text": plain(clip(text, HEADER_TEXT_MAX))}


def context(text: str, block_id: str | None = None) -> Block:
    """A context block with one mrkdwn element."""
    block: Block = {"type": "context", "elements": [mrkdwn(clip(text, SECTION_TEXT_MAX))]}
    if block_id is not None:
        block["block_id"] = block_id
    return block


def fields(*pairs: tuple[str, str]) -> Block:
    """A section of up to ten ``*name*\\nvalue`` fields."""
    items = [mrkdwn(clip(f"*{name}*\n{value}", FIELD_TEXT_MAX)) for name, value in pairs]
    return {"type": "section", "fields": items[:10]}


def divider() -> Block:
    return {"type": "divider"}


def actions(elements: list[dict[str, Any]], block_id: str | None = None) -> Block:
    block: Block = {"type": "actions", "elements": elements}
    if block_id is not None:
        block["block_id"] = block_id
    return block


def confirm(title: str, text: str, yes: str) -> dict[str, Any]:
    """A confirmation dialog (its deny button says "やめる / Cancel")."""
    return {"title": plain(title), "text": mrkdwn(text), "confirm": plain(yes), "deny": plain("やめる / Cancel")}


def button(
    text: str,
    action_id: str,
    value: str,
    *,
    style: str | None = None,
    confirmation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "button", "action_id": action_id, "value": value, "text": plain(text)}
    if style is not None:
        element["style"] = style
    if confirmation is not None:
        element["confirm"] = confirmation
    return element


def option(text: str, value: str) -> dict[str, Any]:
    """A select's option, its text cut to Slack's limit."""
    return {"text": plain(clip(text, OPTION_TEXT_MAX)), "value": value}


def block_text_chars(blocks: list[dict[str, Any]]) -> int:
    """All text in ``blocks`` (every text object's ``text``), as Slack counts it for msg_blocks_too_long."""
    total = 0
    stack: list[Any] = list(blocks)
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if value.get("type") in ("mrkdwn", "plain_text") and isinstance(value.get("text"), str):
                total += len(value["text"])
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return total
