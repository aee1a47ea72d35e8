"""Channel lifecycle events: a watched or desk channel archived, deleted, shared or unshared, or the bot removed.

Only channels the newsroom uses matter (a watch, or a route's desk): for those a :class:`common.jobs.ChannelEvent`
is enqueued, once per event, and a worker (``worker.lifecycle``) pauses or removes the watch and routes and tells
the admins who set them. Any other channel's event is acked and ignored (a Redis read, within Slack's 3 s).
A channel made private or public arrives as a message subtype (``bot.listeners.messages``), through
:func:`submit_change` too.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App

from bot.submit import JobSubmitter
from common.jobs import ChannelChange, ChannelEvent
from store import newsroom

log = logging.getLogger(__name__)

# Slack's event type → what happened to the channel (group_*: the private channels' events).
CHANGES: dict[str, ChannelChange] = {
    "channel_archive": "archived",
    "group_archive": "archived",
    "channel_deleted": "deleted",
    "group_deleted": "deleted",
    "channel_left": "removed",  # sent to the bot itself when it is removed from a channel
    "group_left": "removed",
    "member_left_channel": "removed",  # only when the member is the bot
    "channel_shared": "audience",
    "channel_unshared": "audience",
    # message subtypes (bot.listeners.messages)
    "channel_convert_to_private": "audience",
    "channel_convert_to_public": "audience",
}


def in_use(submitter: JobSubmitter, channel: str) -> bool:
    """Whether ``channel`` is watched or a route's desk."""
    connection = submitter.connection
    return newsroom.watch_of(connection, channel) is not None or bool(newsroom.routes_to(connection, channel))


def submit_change(submitter: JobSubmitter, kind: str, channel: str, event_id: str) -> str | None:
    """Enqueue the worker's part of ``kind`` (a key of :data:`CHANGES`) in ``channel``, if the newsroom uses it."""
    if not channel or not in_use(submitter, channel):
        return None
    event = ChannelEvent(request_id=event_id, channel=channel, change=CHANGES[kind], event=kind)
    log.info("%s in %s: enqueued for its watch and routes", kind, channel)
    return submitter.submit_channel_event(event, delivery_key=f"event:{event_id}")


def handle_channel_event(
    event: dict[str, Any], body: dict[str, Any], submitter: JobSubmitter, bot_user_id: str | None = None
) -> None:
    """One of :data:`CHANGES`' events (Bolt acks after this returns; a Redis error is raised for Slack to retry)."""
    kind = str(event.get("type") or "")
    if kind == "member_left_channel" and (not bot_user_id or event.get("user") != bot_user_id):
        return  # someone else left
    channel = event.get("channel")
    if isinstance(channel, dict):  # some events carry the channel object
        channel = channel.get("id")
    submit_change(submitter, kind, str(channel or ""), str(body.get("event_id") or f"{kind}:{channel}"))


def register(app: App) -> None:
    # Spelled out: tests/test_bot_manifest.py checks each registered event against the manifest's subscriptions.
    app.event("channel_archive")(handle_channel_event)
    app.event("group_archive")(handle_channel_event)
    app.event("channel_deleted")(handle_channel_event)
    app.event("group_deleted")(handle_channel_event)
    app.event("channel_left")(handle_channel_event)
    app.event("group_left")(handle_channel_event)
    app.event("member_left_channel")(handle_channel_event)
    app.event("channel_shared")(handle_channel_event)
    app.event("channel_unshared")(handle_channel_event)
