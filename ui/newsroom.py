"""What newsbot says about the newsroom: answers to the admins' watch and route subcommands, desk posts, and the
notes and warnings about routes. Channel and user ids come from Slack; labels (a newsroom's dataset names them),
what an admin typed and Slack's error codes go through :func:`common.mrkdwn.code` or :func:`~common.mrkdwn.literal`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from common.mrkdwn import code, literal
from common.mrkdwn import link as mrkdwn_link
from store.newsroom import Route, Watch
from ui.blocks import context, section
from ui.replies import ArticleResult, reply_message

# --- answers to /classify-news watch · unwatch · watching · route … (to the admin alone) ------------------------


def watching_on(channel: str) -> str:
    return (
        f"<#{channel}> を監視します。リンクか200文字以上の本文がある新しいメッセージを自動で分類します。"
        "ボットがまだこのチャンネルにいない場合は `/invite @newsbot` を実行してください。\n"
        f"Watching <#{channel}>: every new message with a link or 200+ characters of text is classified. "
        "If the bot is not in this channel yet, run `/invite @newsbot`."
    )


def watching_off(channel: str, was_watched: bool) -> str:
    if not was_watched:
        return f"<#{channel}> は監視していません。\n<#{channel}> was not being watched."
    return f"<#{channel}> の監視をやめました。\nStopped watching <#{channel}>."


def watch_list(watches: Sequence[Watch]) -> str:
    if not watches:
        return "監視中のチャンネルはありません。\nNo channel is being watched."
    lines = ["*監視中のチャンネル / Watched channels*"]
    lines.extend(f"• <#{w.channel}> (by <@{w.by}>)" for w in watches)
    return "\n".join(lines)


def route_list(routes: Sequence[Route]) -> str:
    if not routes:
        return "転送先はまだありません。\nNo routes yet: `/classify-news route <label> #channel`."
    lines = ["*転送先 / Routes*"]
    for route in routes:
        line = f"• {code(route.label)} → <#{route.channel}> (by <@{route.by}>)"
        if route.warned:
            line += " :warning: ボットがチャンネルにいません / the bot is not in that channel"
        lines.append(line)
    return "\n".join(lines)


def route_checking(label: str, desk: str) -> str:
    return f"<#{desk}> を確認しています… / Checking <#{desk}> for {code(label)}…"


def route_cleared(label: str, had_route: bool) -> str:
    if not had_route:
        return f"{code(label)} の転送先はありません。\n{code(label)} had no route."
    return f"{code(label)} の転送をやめました。\n{code(label)} is no longer cross-posted."


def route_set(label: str, desk: str, bot_is_member: bool) -> str:
    """The worker stored the route (and says how to invite the bot where it is not in the desk yet)."""
    text = (
        f"確信度の高い {code(label)} の記事を <#{desk}> に転送します。\n"
        f"Confident {code(label)} articles from watched channels will be cross-posted to <#{desk}>."
    )
    if not bot_is_member:
        text += (
            f"\n:warning: ボットはまだ <#{desk}> にいません。`/invite @newsbot` を実行してください。"
            f"\nThe bot is not in <#{desk}> yet: run `/invite @newsbot` there."
        )
    return text


def route_refusal(desk: str, reason_ja: str, reason_en: str) -> str:
    """The worker refused ``desk`` as a desk channel, for the reason given; nothing was stored."""
    return (
        f":warning: <#{desk}> を転送先にできません: {reason_ja}\n"
        f"<#{desk}> cannot be a desk: {reason_en}\n転送先は変わっていません。/ No route was changed."
    )


def desk_unknown(error: str) -> tuple[str, str]:
    return (
        f"チャンネルが見つかりません ({literal(error)})。非公開チャンネルなら先にボットを招待してください。",
        f"Slack does not know this channel ({literal(error)}); for a private channel, invite the bot first.",
    )


NOT_A_DESK = ("アーカイブ済み、またはチャンネルではありません。", "it is archived, or not a channel.")


# Why a route or watch subcommand was refused (RouteRefusedError's Japanese and English reasons).
NO_WATCH_IN_DM = (
    "ダイレクトメッセージは監視できません (送られた記事は常に分類します)。",
    "A direct message cannot be watched (articles sent to me there are always classified).",
)


def unknown_label(value: str, labels: Sequence[str]) -> tuple[str, str]:
    return (
        f"ラベル {code(value)} は現在のモデルにありません。",
        f"The current model has no label {code(value)}. Labels: " + ", ".join(code(label) for label in labels),
    )


def not_a_channel(value: str) -> tuple[str, str]:
    return (
        f"{code(value)} はチャンネルとして読めません。"
        "入力候補からチャンネルを選ぶか、チャンネル ID (C…) を指定してください。",
        f"{code(value)} is not a channel I can read: pick the channel from Slack's suggestions, or give its id (C…, "
        "at the bottom of the channel's details).",
    )


# --- watched channels' articles: thread notes and desk posts --------------------------------------------------


def unrouted_note(item: ArticleResult, route: Route) -> str:
    """Why a routed article was not cross-posted: the served model was not sure of it (its rule, or
    CONFIDENCE_THRESHOLD's bar, :func:`newsmodel.confidence.judge`)."""
    return (
        f"モデルが確信できないため (確信度 {item.confidence:.0%})、<#{route.channel}> ({code(route.label)}) には"
        "転送しませんでした。\n"
        f"Not cross-posted to <#{route.channel}> ({code(route.label)}): the model is not sure of it (confidence "
        f"{item.confidence:.0%})."
    )


def with_notes(message: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """``message`` with the routing notes added (as context blocks), or the notes alone."""
    if not notes:
        return message
    blocks = [context(note) for note in notes]
    text = "\n".join(part for part in (message["text"], *notes) if part)
    return {"text": text, "blocks": [*(message.get("blocks") or []), *blocks]}


def desk_message(item: ArticleResult, channel: str, link: str | None) -> dict[str, Any]:
    """The cross-post: where the article was posted (``channel``, and its permalink ``link``), then the article's
    usual result."""
    source = f"<#{channel}>"
    if link:
        source += " · " + mrkdwn_link(link, "元のメッセージ / original message")
    head = f":newspaper: {source}"
    base = reply_message([item])
    return {"text": f"{head}\n{base['text']}", "blocks": [section(head), *base["blocks"]]}


def desk_warning(route: Route, error: str) -> str:
    """The DM to the admin who set ``route``: its desk channel cannot be posted in (``error``)."""
    label, clear, why = code(route.label), code(f"/classify-news route clear {route.label}"), literal(error)
    return (
        f"{label} の記事を <#{route.channel}> に転送できませんでした ({why})。"
        f"ボットがそのチャンネルに参加していません。<#{route.channel}> で `/invite @newsbot` を実行してください"
        f" (転送をやめるには {clear})。\n"
        f"I could not cross-post {label} articles to <#{route.channel}> ({why}): the bot is not in that "
        f"channel. Run `/invite @newsbot` in <#{route.channel}>, or {clear} to "
        "stop routing them."
    )
