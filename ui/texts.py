"""The bot's short answers: usage lines, acknowledgements, and what it says when the queue is down."""

from __future__ import annotations

from common.exceptions import BotNotInChannelError

CLASSIFYING = "分類しています… / Classifying…"
QUEUE_DOWN = (
    ":warning: ただいま受け付けできません。少し待ってからもう一度お試しください。\n"
    "We cannot take requests right now; please try again in a moment."
)
# An empty mention of the bot.
MENTION_USAGE = (
    "記事の本文かリンクを添えてメンションしてください。例: `@newsbot https://news.example.jp/article/123`\n"
    "Mention me with an article's text or a link to it, e.g. `@newsbot https://news.example.jp/article/123`."
)
# A message without an article in the bot's Messages tab.
DM_USAGE = (
    "記事の本文かリンクを送ってください。例: `https://news.example.jp/article/123`\n"
    "Send me an article's text or a link to it, e.g. `https://news.example.jp/article/123`."
)
# The message shortcut on a message without an article.
NOTHING_TO_CLASSIFY = (
    "このメッセージには分類できる本文もリンクもありません。\nThis message has no article text or link to classify."
)


def not_in_channel(text: str) -> str:
    """``text`` answered through a response_url, where the bot is not in the channel (and says how to fix it)."""
    return f"{text}\n{BotNotInChannelError.user_message}"
