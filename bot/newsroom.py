"""Parsing the newsroom subcommands of ``/classify-news``, and the words the bot answers them with.

``/classify-news watch`` · ``unwatch`` · ``watching`` (in the channel concerned), ``route <label> #channel`` ·
``route list`` · ``route clear <label>``. Anything else is article text to classify: a subcommand is only a
text that *is* one of these (a keyword alone, or ``route`` with at most two words after it), so an article that
happens to start with "route" is still classified. Pure functions (no Slack), but for :func:`route_labels`,
which reads the labels the workers publish in Redis.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from redis import Redis

from common.exceptions import RouteRefusedError
from common.labels import SLUGS
from store.newsroom import Route, Watch
from store.serving import serving_states

# A channel as Slack escapes it in a command (``<#C123|name>``, ``<#C123>``, ``<#C123|>``), or its bare id.
_CHANNEL_MARKUP = re.compile(r"<#([CG][A-Z0-9]{2,})(?:\|[^>]*)?>")
_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,}")

NEWSROOM_USAGE = (
    "使い方 / Usage (管理者のみ / admins only):\n"
    "`/classify-news watch` · `/classify-news unwatch` — このチャンネルの記事を自動で分類する / stop "
    "(auto-classify new articles in this channel)\n"
    "`/classify-news watching` — 監視中のチャンネル / the watched channels\n"
    "`/classify-news route <label> #channel` · `route list` · `route clear <label>` — "
    "確信度の高い記事をデスクのチャンネルへ転送 / cross-post confident articles of a label to a desk channel"
)


@dataclass(frozen=True, slots=True)
class WatchCommand:
    """Turn watching of the command's channel on (``on``) or off; or list the watched channels."""

    action: Literal["on", "off", "list"]


@dataclass(frozen=True, slots=True)
class RouteCommand:
    """Set (``label`` → ``desk``), clear (``label``) or list the routes to desks."""

    action: Literal["set", "clear", "list"]
    label: str = ""
    desk: str = ""


NewsroomCommand = WatchCommand | RouteCommand


def route_labels(connection: Redis) -> tuple[str, ...]:
    """The labels a route may name: those of the model the workers serve (as they publish it in their serving
    state, :class:`store.serving.ServingState`: the model most of them serve, the newest on a tie); the livedoor
    slugs while no worker has published one."""
    served = [s for s in serving_states(connection) if s.version and s.labels]
    if not served:
        return SLUGS
    votes: dict[str, int] = {}
    for serving in served:
        votes[serving.version] = votes.get(serving.version, 0) + 1
    version = max(votes, key=lambda v: (votes[v], v))
    return next(s.labels for s in served if s.version == version)


def parse_newsroom(text: str, labels: Sequence[str] | Callable[[], Sequence[str]] = SLUGS) -> NewsroomCommand | None:
    """The subcommand ``text`` is, or None when it is article text; :class:`RouteRefusedError` when malformed.

    ``labels`` (or a function giving them, called only for ``route <label> #channel``) are those a route may
    name."""
    words = text.split()
    if not words:
        return None
    head = words[0]
    if len(words) == 1 and head in ("watch", "unwatch", "watching"):
        return WatchCommand({"watch": "on", "unwatch": "off", "watching": "list"}[head])  # type: ignore[arg-type]
    if head != "route" or len(words) > 3:
        return None
    rest = words[1:]
    if rest == ["list"]:
        return RouteCommand("list")
    if len(rest) == 2 and rest[0] == "clear":
        return RouteCommand("clear", label=rest[1])  # a route of a label the model no longer has can go too
    if len(rest) == 2:
        known = labels() if callable(labels) else labels
        return RouteCommand("set", label=_label(rest[0], known), desk=channel_id(rest[1]))
    raise RouteRefusedError("コマンドの形が正しくありません。", "That command is not complete.\n" + NEWSROOM_USAGE)


def _label(value: str, labels: Sequence[str]) -> str:
    if value in labels:
        return value
    raise RouteRefusedError(
        f"ラベル `{value}` は現在のモデルにありません。",
        f"The current model has no label `{value}`. Labels: " + ", ".join(f"`{label}`" for label in labels),
    )


def channel_id(value: str) -> str:
    """The channel id in ``<#C123|name>`` (a channel picked from Slack's list) or a bare ``C123``."""
    markup = _CHANNEL_MARKUP.fullmatch(value)
    if markup:
        return markup.group(1)
    if _CHANNEL_ID.fullmatch(value):
        return value
    raise RouteRefusedError(
        f"`{value}` はチャンネルとして読めません。"
        "入力候補からチャンネルを選ぶか、チャンネル ID (C…) を指定してください。",
        f"`{value}` is not a channel I can read: pick the channel from Slack's suggestions, or give its id (C…, "
        "at the bottom of the channel's details).",
    )


# --- what the bot says ---------------------------------------------------------------------------------------


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
        line = f"• `{route.label}` → <#{route.channel}> (by <@{route.by}>)"
        if route.warned:
            line += " :warning: ボットがチャンネルにいません / the bot is not in that channel"
        lines.append(line)
    return "\n".join(lines)


def route_checking(label: str, desk: str) -> str:
    return f"<#{desk}> を確認しています… / Checking <#{desk}> for `{label}`…"


def route_cleared(label: str, had_route: bool) -> str:
    if not had_route:
        return f"`{label}` の転送先はありません。\n`{label}` had no route."
    return f"`{label}` の転送をやめました。\n`{label}` is no longer cross-posted."


def no_watch_in_dm() -> RouteRefusedError:
    return RouteRefusedError(
        "ダイレクトメッセージは監視できません (送られた記事は常に分類します)。",
        "A direct message cannot be watched (articles sent to me there are always classified).",
    )
