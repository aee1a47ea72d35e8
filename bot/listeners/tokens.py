"""``app_uninstalled`` and ``tokens_revoked``: Slack says the bot token is dead; every process is told through Redis.

The bot records the token as revoked (``store.slack.mark_revoked``): workers then take no job until auth.test
accepts a token again (``worker.batching``), readiness and ``newsbot_slack_token_valid`` say so, and this process
logs one line. ``tokens_revoked`` counts only when it names bot tokens (and, when Bolt knows the bot's user id,
this bot's): a user's revoked OAuth token is none of the bot's business.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App, BoltContext

from bot.submit import JobSubmitter
from common.settings import Settings
from store.slack import mark_revoked

log = logging.getLogger(__name__)


def revoked(submitter: JobSubmitter, settings: Settings, reason: str) -> None:
    """Record the bot token as revoked by Slack's event ``reason``; say it once."""
    if mark_revoked(submitter.connection, settings.slack_bot_token, reason, f"event:{reason}"):
        log.error(
            "Slack sent %s: the bot token is dead; workers hold every job in the queue until auth.test accepts a"
            " token again. Reinstall the app and set the new SLACK_BOT_TOKEN.",
            reason,
        )


def handle_app_uninstalled(submitter: JobSubmitter, settings: Settings) -> None:
    revoked(submitter, settings, "app_uninstalled")


def handle_tokens_revoked(
    event: dict[str, Any], context: BoltContext, submitter: JobSubmitter, settings: Settings
) -> None:
    bots = [str(user) for user in ((event.get("tokens") or {}).get("bot") or [])]
    mine = context.bot_user_id
    if not bots or (mine and mine not in bots):
        log.info("tokens_revoked names no token of this bot (%d bot tokens): ignored", len(bots))
        return
    revoked(submitter, settings, "tokens_revoked")


def register(app: App) -> None:
    app.event("app_uninstalled")(handle_app_uninstalled)
    app.event("tokens_revoked")(handle_tokens_revoked)
