"""The slash commands, one table: their subcommands, syntax, Japanese and English descriptions, who may run them.

The help texts (the App Home's, the usage lines of ``/classify-news`` and ``/retrain``, the newsroom usage) are
generated from :data:`COMMANDS`, and the bot's subcommand tables (``bot.listeners.commands``) dispatch on the
same names (:func:`subcommand_names`), so the help cannot drift from what the bot does (tests check both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from common.kinds import MODEL_KINDS

CLASSIFY_NEWS = "/classify-news"
RETRAIN = "/retrain"


@dataclass(frozen=True, slots=True)
class Subcommand:
    """One form of a command: ``name`` is what the bot dispatches on, ``syntax`` what the user types after it."""

    name: str
    syntax: str
    ja: str
    en: str
    admin_only: bool = True


@dataclass(frozen=True, slots=True)
class Command:
    """A slash command. ``argument_ja``/``argument_en``: the text of its plain form (when it has one: what is not
    a subcommand), e.g. ``/classify-news <article text or a link to it>``."""

    name: str
    ja: str
    en: str
    subcommands: tuple[Subcommand, ...]
    argument_ja: str = ""
    argument_en: str = ""


COMMANDS: tuple[Command, ...] = (
    Command(
        CLASSIFY_NEWS,
        "記事を分類する",
        "classify an article",
        argument_ja="<記事の本文 または リンク>",
        argument_en="<article text or a link to it>",
        subcommands=(
            Subcommand(
                "watch", "watch", "このチャンネルの記事を自動で分類する", "auto-classify new articles in this channel"
            ),
            Subcommand("unwatch", "unwatch", "このチャンネルの監視をやめる", "stop auto-classifying this channel"),
            Subcommand("watching", "watching", "監視中のチャンネル", "the watched channels"),
            Subcommand(
                "route set",
                "route <label> #channel [allow-wider]",
                "確信度の高い記事をデスクのチャンネルへ転送 (allow-wider: 公開範囲の狭いチャンネルの記事も)",
                "cross-post confident articles of a label to a desk channel (allow-wider: from narrower channels too)",
            ),
            Subcommand("route list", "route list", "転送先の一覧", "the routes to desks"),
            Subcommand("route clear", "route clear <label>", "ラベルの転送をやめる", "stop cross-posting a label"),
        ),
    ),
    Command(
        RETRAIN,
        "モデルを再学習・切り替える",
        "retrain or switch the model",
        subcommands=(
            Subcommand(
                "train",
                f"[epochs=N] [base=org/name|folder] [type={'|'.join(MODEL_KINDS)}] [force]",
                "新しいモデルを学習",
                "train a new model",
            ),
            Subcommand("status", "status", "モデル・ワーカー・学習の状況", "the model, the workers and any training"),
            Subcommand(
                "rollback",
                "rollback [version]",
                "一つ前 (または指定) のバージョンに戻す",
                "make the previous (or the named) version current",
            ),
            Subcommand("cancel", "cancel", "実行中の学習を止める", "stop the training in hand"),
        ),
    ),
)


def command(name: str) -> Command:
    return next(c for c in COMMANDS if c.name == name)


def subcommand_names(name: str) -> frozenset[str]:
    """The names of ``name``'s subcommands: exactly the keys of the bot's dispatch table for it."""
    return frozenset(s.name for s in command(name).subcommands)


def usage(name: str, sub: str) -> str:
    """``/command syntax`` of one subcommand, in backticks."""
    found = next(s for s in command(name).subcommands if s.name == sub)
    return f"`{name} {found.syntax}`"


def _described(cmd: Command, sub: Subcommand) -> str:
    return f"`{cmd.name} {sub.syntax}` — {sub.ja} / {sub.en}"


def classify_usage() -> str:
    """The usage line of ``/classify-news`` without an article."""
    cmd = command(CLASSIFY_NEWS)
    return f"使い方: `{cmd.name} {cmd.argument_ja}`\nUsage: `{cmd.name} {cmd.argument_en}`"


def newsroom_usage() -> str:
    """The admins' newsroom subcommands of ``/classify-news``, one a line."""
    cmd = command(CLASSIFY_NEWS)
    lines = ["使い方 / Usage (管理者のみ / admins only):"]
    lines.extend(_described(cmd, sub) for sub in cmd.subcommands)
    return "\n".join(lines)


def retrain_usage() -> str:
    """The usage line of ``/retrain``, every form."""
    cmd = command(RETRAIN)
    return "使い方 / Usage: " + ", ".join(f"`{cmd.name} {sub.syntax}`" for sub in cmd.subcommands)


def usage_hint(name: str) -> str:
    """The ``usage_hint`` of ``name`` in ``manifest.yml`` (Slack shows it as the command is typed): the plain form,
    then every subcommand's syntax (tests/test_bot_manifest.py checks the manifest against it)."""
    cmd = command(name)
    forms = ([cmd.argument_en] if cmd.argument_en else []) + [sub.syntax for sub in cmd.subcommands]
    return " | ".join(forms)


ResponseType = Literal["in_channel", "ephemeral"]


def _where_results_go(response_type: ResponseType) -> str:
    if response_type == "ephemeral":
        return "結果はあなたにだけ表示 / the result is shown to you alone"
    return "結果はチャンネルに表示 / the result is posted in the channel"


def home_help(response_type: ResponseType) -> str:
    """The App Home's "How to use", for the bot's CLASSIFY_RESPONSE_TYPE (where ``/classify-news`` answers)."""
    classify = command(CLASSIFY_NEWS)
    lines = [
        "*分類する / Classify*",
        "• `@newsbot <本文 or リンク>` とメンション / mention the bot with an article's text or link",
        f"• `{classify.name} <本文 or リンク>` ({_where_results_go(response_type)})",
        "• メッセージの「…」→ *Classify this article* / a message's ⋯ menu → *Classify this article*",
        "*フィードバック / Feedback*",
        "• 結果の「👍 正しい / Correct」か「👎 違う / Wrong」を押して正しいカテゴリを選ぶと、次の再学習で使われます。",
        "  Press Correct or Wrong on a result (and pick the right category): the next retraining learns from it.",
        "*管理者 / Admins*",
    ]
    for cmd in COMMANDS:
        lines.extend(f"• {_described(cmd, sub)}" for sub in cmd.subcommands if sub.admin_only)
    return "\n".join(lines)
