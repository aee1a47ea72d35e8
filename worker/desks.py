"""The newsroom side of the worker: watched channels' reactions and cross-posts to desks.

A ``watch`` job (a new article in a watched channel) finishes with these instead of the usual reply
(``worker.jobs.finish_watch``), each only for the articles the served model is *sure* of (its rule, or
CONFIDENCE_THRESHOLD's bar: :func:`newsmodel.confidence.judge`): its category reaction (CATEGORY_EMOJI) on the message,
a cross-post of each to its label's desk channel (the route an admin set), and a thread reply only as WATCH_REPLY
says, or to say why a routed article was not cross-posted (the model was not sure of it). Nothing is done
twice for one job: each step leaves a mark (``store.deliveries.ReplyMark`` under ``<job id>:reactions``,
``<job id>:desk:<record id>``) that a retried job finds. A watch job never posts an error: the message was not
addressed to the bot; the log says what went wrong.

Slack's rate limits: 429 answers are waited out by slack_sdk's RateLimitErrorRetryHandler (worker.slack), and
every worker paces its reactions and posts through one pace kept in Redis (:func:`pacer`, ``store.slack.SlackPace``:
SLACK_PACE_S per method and channel, shared by all workers), so that a burst in one channel is answered steadily,
however many workers take it, instead of tripping the limits.

When the bot is not in a desk channel (``not_in_channel``), the admin who set the route is told once, in a DM,
how to fix it (``Route.warned``); the article is not cross-posted and the job goes on.

Embargoed stories: a cross-post is made only when the desk's audience is no wider than the article's channel's
(:class:`common.audience.Audience`; private < internal < externally shared), checked at the time of the post with
conversations.info for both channels (kept a minute in Redis, ``store.newsroom.ChannelFacts``, so that every
worker and the lifecycle events share and forget it), unless an admin opted the route in with ``allow-wider`` for
the desk's audience. A held article's thread says so without naming the desk, and the admin who set the route
is told once per route and reason (``Route.held_told``). When Slack cannot say who reads a channel, nothing is
cross-posted (fail closed). A desk found archived pauses its route and tells its admin (:func:`pause_route`).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Protocol

from redis import Redis
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from common.audience import Audience
from common.jobs import ClassifyRequest
from common.settings import Settings
from store import deliveries, newsroom
from store.deliveries import ReplyMark
from store.newsroom import ChannelFacts, Route
from store.slack import SlackPace
from ui.newsroom import desk_message, desk_warning, held_note, held_warning, route_ended, unrouted_note
from ui.replies import is_unsure
from worker.pipeline import ArticleResult
from worker.slack import NOT_IN_CHANNEL, SlackReplier

log = logging.getLogger(__name__)

# reactions.add answers these when retrying would not help; the job goes on without the reaction.
_REACTION_GIVE_UP = frozenset({*NOT_IN_CHANNEL, "message_not_found", "invalid_name", "too_many_reactions"})


class WorkerSide(Protocol):
    """What these functions use of the worker's runtime (``worker.jobs.Runtime``)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def connection(self) -> Redis: ...

    @property
    def replier(self) -> SlackReplier: ...


def pacer(rt: WorkerSide) -> SlackPace:
    """The Slack pace every worker shares (SLACK_PACE_S per method and channel, kept in Redis: store.slack)."""
    return SlackPace(rt.connection, rt.settings.slack_pace_s)


# --- watched channels: reactions, cross-posts, the admin told when a desk is out of reach -----------------------


def react(rt: WorkerSide, job_id: str, request: ClassifyRequest, items: list[ArticleResult]) -> list[str]:
    """Add each article's category reaction to the message (each emoji once, once per job); the emoji added."""
    mark = f"{job_id}:reactions"
    if not request.thread_ts or deliveries.reply_mark(rt.connection, mark) is not None:
        return []
    names = list(dict.fromkeys(rt.settings.emoji_for(item.slug) for item in items))
    added = []
    for name in names:
        try:
            with pacer(rt).slot("reactions.add", request.channel):
                rt.replier.client.reactions_add(channel=request.channel, timestamp=request.thread_ts, name=name)
        except SlackApiError as exc:
            error = exc.response.get("error")
            if error == "already_reacted":
                continue
            if error in _REACTION_GIVE_UP:
                log.warning("reaction :%s: on %s/%s refused: %s", name, request.channel, request.thread_ts, error)
                continue
            raise
        added.append(name)
    deliveries.put_reply_mark(rt.connection, ReplyMark(job_id=mark, ts=""))
    return added


def route_articles(
    rt: WorkerSide, job_id: str, request: ClassifyRequest, items: list[ArticleResult]
) -> tuple[list[str], list[str]]:
    """Cross-post each article the served model is sure of that has a route; the desk channels posted to, and the
    thread notes saying why a routed article was not cross-posted (the model was not sure of it)."""
    routed: list[str] = []
    notes: list[str] = []
    for item in items:
        route = newsroom.route_of(rt.connection, item.slug)
        if route is None or route.paused:
            continue
        if is_unsure(item):
            notes.append(unrouted_note(item, route))
            continue
        allowed = may_post(rt, request.channel, route)
        if allowed is False:
            notes.append(held_note(route.label))
            continue
        if allowed and cross_post(rt, job_id, request, item, route):
            routed.append(route.channel)
    return routed, notes


def facts_of(rt: WorkerSide, channel: str, *, fresh: bool = False) -> ChannelFacts:
    """What conversations.info says of ``channel`` (kept CHANNEL_FACTS_TTL_S in Redis); SlackApiError when Slack
    will not say."""

    def info(name: str) -> dict[str, Any]:
        found: dict[str, Any] = rt.replier.client.conversations_info(channel=name).get("channel") or {}
        return found

    return newsroom.channel_facts(rt.connection, channel, info, fresh=fresh)


def may_post(rt: WorkerSide, source: str, route: Route) -> bool | None:
    """Whether an article of ``source`` may be cross-posted to ``route``'s desk now: True; False when it is held
    back because the desk reaches a wider audience (or Slack would not say who reads either; its admin is told
    once); None when the desk is out of reach (archived: the route is paused; the bot cannot see it: the admin is
    told as for ``not_in_channel``)."""
    try:
        source_facts = facts_of(rt, source)
    except SlackApiError as exc:
        log.warning("audience of %s unknown (%s): holding %s", source, exc.response.get("error"), route.label)
        tell_held(rt, route, source, None, None)
        return False
    try:
        desk_facts = facts_of(rt, route.channel)
    except SlackApiError as exc:
        error = str(exc.response.get("error") or "")
        if error in NOT_IN_CHANNEL:
            warn_admin(rt, route, error)
            return None
        log.warning("audience of desk %s unknown (%s): holding %s", route.channel, error, route.label)
        tell_held(rt, route, source, source_facts.audience, None)
        return False
    if desk_facts.archived:
        pause_route(rt, route, "archived")
        return None
    if allows(route, source_facts.audience, desk_facts.audience):
        return True
    log.info("held %s of %s from %s: the desk is wider", route.label, source, route.channel)
    tell_held(rt, route, source, source_facts.audience, desk_facts.audience)
    return False


def allows(route: Route, source: Audience, desk: Audience) -> bool:
    """The rule: the desk reaches no one the source does not, or an admin opted the route in (``allow-wider``)
    for an audience the desk is still no wider than."""
    if not desk.wider_than(source):
        return True
    return bool(route.allow_wider) and not desk.wider_than(Audience.from_key(route.allow_wider))


def tell(rt: WorkerSide, user: str, text: str) -> bool:
    """A DM from the bot to ``user``; False when Slack refused it (logged)."""
    try:
        rt.replier.client.chat_postMessage(channel=user, text=text)
    except SlackApiError as exc:
        log.warning("could not tell %s: %s", user, exc.response.get("error"))
        return False
    return True


def tell_held(
    rt: WorkerSide, route: Route, source: str, source_aud: Audience | None, desk_aud: Audience | None
) -> None:
    """Tell the admin who set ``route`` that an article was held back, once per route and reason."""
    reason = f"{source_aud.key}>{desk_aud.key}" if source_aud and desk_aud else "unknown"
    current = newsroom.route_of(rt.connection, route.label)
    if current is None or current.channel != route.channel or current.at != route.at or reason in current.held_told:
        return
    claim = f"route-held:{route.label}:{route.channel}:{route.at}:{reason}"
    if not deliveries.claim_delivery(rt.connection, claim):
        return  # another job is telling them
    if not tell(rt, route.by, held_warning(route, source, source_aud, desk_aud)):
        deliveries.release_delivery(rt.connection, claim)
        return
    newsroom.put_route(rt.connection, replace(current, held_told=(*current.held_told, reason)))


def pause_route(rt: WorkerSide, route: Route, why: str) -> bool:
    """Pause ``route`` (its desk was archived, or the bot removed from it) and tell its admin once; False when it
    was paused already or changed meanwhile."""
    current = newsroom.route_of(rt.connection, route.label)
    if current is None or current.channel != route.channel or current.paused:
        return False
    claim = f"route-paused:{route.label}:{route.channel}:{current.at}:{why}"
    if not deliveries.claim_delivery(rt.connection, claim):
        return False
    newsroom.put_route(rt.connection, replace(current, paused=why))
    log.info("route %s → %s paused: %s", route.label, route.channel, why)
    tell(rt, current.by, route_ended(current, why, paused=True))
    return True


def permalink(client: WebClient, channel: str, ts: str | None) -> str | None:
    """The message's permalink (chat.getPermalink), or None when Slack cannot give one."""
    if not ts:
        return None
    try:
        link = client.chat_getPermalink(channel=channel, message_ts=ts).get("permalink")
    except SlackApiError as exc:
        log.info("no permalink for %s/%s: %s", channel, ts, exc.response.get("error"))
        return None
    return str(link) if link else None


def cross_post(rt: WorkerSide, job_id: str, request: ClassifyRequest, item: ArticleResult, route: Route) -> bool:
    """Post ``item`` in its desk channel (once per job and article); False when Slack refused the channel."""
    mark = f"{job_id}:desk:{item.record_id}"
    if deliveries.reply_mark(rt.connection, mark) is not None:
        return True
    client = rt.replier.client
    link = permalink(client, request.channel, request.thread_ts)
    message = desk_message(item, request.channel, link)
    try:
        with pacer(rt).slot("chat.postMessage", route.channel):
            answer = client.chat_postMessage(
                channel=route.channel,
                text=message["text"],
                blocks=message["blocks"],
                unfurl_links=False,
                unfurl_media=False,
            )
    except SlackApiError as exc:
        error = str(exc.response.get("error") or "")
        if error == "is_archived":
            log.warning("cross-post of %s to %s refused: %s", item.record_id, route.channel, error)
            newsroom.forget_facts(rt.connection, route.channel)
            pause_route(rt, route, "archived")
            return False
        if error in NOT_IN_CHANNEL:
            log.warning("cross-post of %s to %s refused: %s", item.record_id, route.channel, error)
            warn_admin(rt, route, error)
            return False
        raise
    deliveries.put_reply_mark(rt.connection, ReplyMark(job_id=mark, ts=str(answer.get("ts") or "")))
    return True


def warn_admin(rt: WorkerSide, route: Route, error: str) -> None:
    """Tell the admin who set ``route`` (a DM from the bot), once per route, that its desk is unreachable."""
    current = newsroom.route_of(rt.connection, route.label)
    if current is None or current.warned or current.channel != route.channel:
        return
    claim = f"route-warning:{route.label}:{route.channel}:{route.at}"
    if not deliveries.claim_delivery(rt.connection, claim):
        return  # another job is telling them
    try:
        rt.replier.client.chat_postMessage(channel=route.by, text=desk_warning(route, error))
    except SlackApiError as exc:
        log.warning("could not tell %s about route %s: %s", route.by, route.label, exc.response.get("error"))
        deliveries.release_delivery(rt.connection, claim)
        return
    newsroom.put_route(rt.connection, replace(current, warned=True))
