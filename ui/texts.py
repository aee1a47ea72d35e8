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


def member_rate_limited(per_minute: int) -> str:
    """A member asked for more than ``per_minute`` classifications in a minute: told once per minute."""
    return (
        f":hourglass: 短い間にたくさんのご依頼をいただいたため、1分間に{per_minute}件までお受けしています。"
        "少し待ってからもう一度お送りください (この間のご依頼は分類していません)。\n"
        f"You have sent a lot of requests in a short time: I take up to {per_minute} a minute from each person. "
        "Please wait a minute and send them again (the ones sent meanwhile were not classified)."
    )
