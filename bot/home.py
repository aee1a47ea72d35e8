"""The bot's side of the App Home: publish a user's Home with the bot's client.

What the Home shows and its Block Kit live in :mod:`ui.home`, which the worker also uses to republish
the Homes of recent viewers after a model change; this module only adds the bot's own knowledge: who is an
admin (checked with :class:`~bot.admins.AdminPolicy`), and where the user's DM with the app is.
"""

from __future__ import annotations

import logging
import time

from redis import Redis
from slack_sdk import WebClient

from bot.admins import AdminPolicy
from bot.editors import EditorPolicy
from common.settings import Settings
from store import activity
from store.activity import HomeViewer
from ui import home

log = logging.getLogger(__name__)


def publish_home(
    client: WebClient, connection: Redis, user: str, is_admin: bool, settings: Settings, *, notice: str = ""
) -> None:
    """Build ``user``'s Home from what Redis holds now and publish it (``views.publish``); its day counts are
    calendar days in the newsroom's time zone (NEWSROOM_TIMEZONE). An editor's Home has the review queue."""
    data = home.gather(
        connection,
        user,
        is_admin,
        timezone=settings.newsroom_timezone,
        classify_response_type=settings.classify_response_type,
        notice=notice,
        trust=EditorPolicy(settings).trust_policy(client),
    )
    view = home.home_view(data)
    client.views_publish(user_id=user, view=view)


def open_home(
    client: WebClient, connection: Redis, admins: AdminPolicy, user: str, channel: str, settings: Settings
) -> None:
    """``user`` opened the Home tab: remember them as a recent viewer (with their DM channel) and publish it."""
    is_admin = admins.is_admin(client, user)
    activity.note_home_viewer(connection, HomeViewer(user=user, channel=channel, admin=is_admin, at=time.time()))
    publish_home(client, connection, user, is_admin, settings)
