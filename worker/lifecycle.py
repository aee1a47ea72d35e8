"""A watched or desk channel's life: archived, deleted, the bot removed from it, its privacy or sharing changed.

The bot hears Slack's events (``bot.listeners.channels``) and enqueues a :class:`common.jobs.ChannelEvent`; here,
on a worker (Slack calls kept out of the bot's ack), the watches and routes of that channel follow it, and the
admin who set each is told in a DM what happened and what to do:

- archived, deleted, or the bot removed: the channel's watch is removed (so it cannot silently resume when the bot
  is invited again: an admin runs ``watch`` again); a route to it is paused (archived, bot removed: set the route
  again to resume) or removed (deleted: the channel is gone);
- shared, unshared, made private or public: what was kept about its audience is forgotten and Slack is asked
  again; the admins of its watch and routes are told its new audience and what it means (a desk that became wider
  holds back articles of narrower channels, an ``allow-wider`` given for a narrower audience included).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError

from common.audience import Audience
from common.jobs import ChannelEvent
from store import newsroom
from ui.newsroom import desk_audience_changed, route_ended, watch_ended, watched_audience_changed
from worker.desks import WorkerSide, allows, facts_of, pause_route, tell
from worker.jobs import in_job_context, runtime

log = logging.getLogger(__name__)

# An article of a private channel: what a desk's audience is checked against when it changes.
_PRIVATE = Audience(private=True, external=False)


@in_job_context
def channel_changed(payload: dict[str, Any]) -> dict[str, Any]:
    """The job the bot enqueues for a channel's lifecycle event."""
    return follow(runtime(), ChannelEvent.from_dict(payload))


def follow(rt: WorkerSide, event: ChannelEvent) -> dict[str, Any]:
    """Make the watch and routes of ``event.channel`` follow what happened to it; what was done."""
    connection, channel = rt.connection, event.channel
    newsroom.forget_facts(connection, channel)
    done: dict[str, Any] = {"channel": channel, "change": event.change, "watch": "", "routes": {}}
    if event.change != "audience":
        watch = newsroom.watch_of(connection, channel)
        if watch is not None and newsroom.remove_watch(connection, channel):
            log.info("watch of %s removed: %s (%s)", channel, event.change, event.event)
            tell(rt, watch.by, watch_ended(channel, event.change))
            done["watch"] = "removed"
        for route in newsroom.routes_to(connection, channel):
            if event.change == "deleted":
                if newsroom.remove_route(connection, route.label):
                    log.info("route %s → %s removed: the channel was deleted", route.label, channel)
                    tell(rt, route.by, route_ended(route, "deleted", paused=False))
                    done["routes"][route.label] = "removed"
            elif pause_route(rt, route, event.change):
                done["routes"][route.label] = "paused"
        return done
    try:
        facts = facts_of(rt, channel, fresh=True)
    except SlackApiError as exc:
        # The next cross-post asks again (nothing is kept), and holds its article while Slack will not say.
        log.warning("audience of %s not re-checked after %s: %s", channel, event.event, exc.response.get("error"))
        return done
    watch = newsroom.watch_of(connection, channel)
    if watch is not None:
        tell(rt, watch.by, watched_audience_changed(channel, facts.audience))
        done["watch"] = facts.audience.key
    for route in newsroom.routes_to(connection, channel):
        held = not allows(route, _PRIVATE, facts.audience)
        tell(rt, route.by, desk_audience_changed(route, facts.audience, held))
        done["routes"][route.label] = facts.audience.key
    return done
