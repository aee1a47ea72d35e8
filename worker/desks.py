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
this worker paces its own reactions and posts (:class:`Pacer`, SLACK_PACE_S per method and channel), so that a
burst in one channel is answered steadily instead of tripping the limits.

When the bot is not in a desk channel (``not_in_channel``), the admin who set the route is told once, in a DM,
how to fix it (``Route.warned``); the article is not cross-posted and the job goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Protocol

from redis import Redis
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from common.jobs import ClassifyRequest
from common.settings import Settings
from store import deliveries, newsroom
from store.deliveries import ReplyMark
from store.newsroom import Route
from ui.newsroom import desk_message, desk_warning, unrouted_note
from ui.replies import is_unsure
from worker.pipeline import ArticleResult
from worker.slack import NOT_IN_CHANNEL, SlackReplier

log = logging.getLogger(__name__)

# reactions.add answers these when retrying would not help; the job goes on without the reaction.
_REACTION_GIVE_UP = frozenset({*NOT_IN_CHANNEL, "message_not_found", "invalid_name", "too_many_reactions"})


class Pacer:
    """At most one call per ``interval_s`` for each (method, channel), from this process.

    Slack allows about one message per second per channel and a few dozen reactions a minute; a burst of
    articles in one channel is spread out here instead of being answered with 429s. Thread-safe.
    """

    def __init__(
        self,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._sleep = sleep
        self._next: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def wait(self, method: str, channel: str) -> float:
        """Sleep until ``method`` may be called in ``channel`` again; the seconds slept."""
        with self._lock:
            now = self._clock()
            at = max(now, self._next.get((method, channel), now))
            self._next[(method, channel)] = at + self.interval_s
        if at > now:
            self._sleep(at - now)
        return at - now

    @contextmanager
    def slot(self, method: str, channel: str) -> Iterator[float]:
        """Wait for ``method``'s turn in ``channel``, make the call in the block; the next turn comes at least
        ``interval_s`` after the block ends, so a call slack_sdk retried (after a 429) is spaced out too."""
        waited = self.wait(method, channel)
        try:
            yield waited
        finally:
            with self._lock:
                key = (method, channel)
                self._next[key] = max(self._next.get(key, 0.0), self._clock() + self.interval_s)


class WorkerSide(Protocol):
    """What these functions use of the worker's runtime (``worker.jobs.Runtime``)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def connection(self) -> Redis: ...

    @property
    def replier(self) -> SlackReplier: ...


_pacers: dict[float, Pacer] = {}


def pacer(settings: Settings) -> Pacer:
    """This process's pacer (one per SLACK_PACE_S)."""
    return _pacers.setdefault(settings.slack_pace_s, Pacer(settings.slack_pace_s))


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
            with pacer(rt.settings).slot("reactions.add", request.channel):
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
        if route is None:
            continue
        if is_unsure(item):
            notes.append(unrouted_note(item, route))
            continue
        if cross_post(rt, job_id, request, item, route):
            routed.append(route.channel)
    return routed, notes


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
        with pacer(rt.settings).slot("chat.postMessage", route.channel):
            answer = client.chat_postMessage(
                channel=route.channel,
                text=message["text"],
                blocks=message["blocks"],
                unfurl_links=False,
                unfurl_media=False,
            )
    except SlackApiError as exc:
        error = str(exc.response.get("error") or "")
        if error in NOT_IN_CHANNEL or error == "is_archived":
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
