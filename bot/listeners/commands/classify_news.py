"""``/classify-news <text or links>``, and its admins' newsroom subcommands (``watch``, ``route …``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.admins import AdminPolicy
from bot.newsroom import NewsroomCommand, RouteCommand, is_newsroom, no_watch_in_dm, parse_newsroom, route_labels
from bot.submit import JobSubmitter
from common.articles import has_article
from common.audience import Audience
from common.exceptions import NewsbotError, NotAdminError
from common.jobs import ClassifyRequest, RouteRequest
from common.settings import Settings
from store import newsroom
from store.newsroom import Watch
from telemetry import metrics
from ui.commands import CLASSIFY_NEWS, classify_usage
from ui.newsroom import route_checking, route_cleared, route_list, watch_list, watching_off, watching_on
from ui.texts import CLASSIFYING, QUEUE_DOWN, member_rate_limited

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NewsroomCall:
    """An admin's newsroom subcommand, checked: who ran it, where, with the route's label and desk if any."""

    command: dict[str, Any]
    submitter: JobSubmitter
    user: str
    channel: str
    label: str = ""
    desk: str = ""
    allow_wider: bool = False
    client: WebClient | None = None

    @property
    def connection(self) -> Redis:
        return self.submitter.connection

    def require_channel(self) -> None:
        """Refuse a watch of a DM (the articles sent there are always classified)."""
        if self.channel.startswith("D"):
            raise no_watch_in_dm()


def _watch(call: NewsroomCall) -> str:
    call.require_channel()
    newsroom.put_watch(call.connection, Watch(channel=call.channel, by=call.user, at=time.time()))
    return watching_on(call.channel, _audience(call))


def _audience(call: NewsroomCall) -> Audience | None:
    """The watched channel's audience (conversations.info, kept a minute), to tell the admin what a private or
    externally shared channel means for the routes; None when Slack will not say (the bot is not in it yet)."""
    client = call.client
    if client is None:
        return None

    def info(channel: str) -> dict[str, Any]:
        found: dict[str, Any] = client.conversations_info(channel=channel).get("channel") or {}
        return found

    try:
        return newsroom.channel_facts(call.connection, call.channel, info).audience
    except SlackApiError as exc:
        log.info("audience of %s unknown: %s", call.channel, exc.response.get("error"))
        return None


def _unwatch(call: NewsroomCall) -> str:
    call.require_channel()
    return watching_off(call.channel, newsroom.remove_watch(call.connection, call.channel))


def _watching(call: NewsroomCall) -> str:
    return watch_list(newsroom.watches(call.connection))


def _route_set(call: NewsroomCall) -> str:
    """Only enqueued: a worker checks the desk channel (conversations.info, a Slack call kept out of the ack) and
    answers through the command's response_url."""
    trigger = call.command["trigger_id"]
    route = RouteRequest(
        request_id=trigger,
        user=call.user,
        channel=call.channel,
        label=call.label,
        desk=call.desk,
        response_url=call.command.get("response_url"),
        allow_wider=call.allow_wider,
    )
    call.submitter.submit_route(route, delivery_key=f"command:{trigger}")
    return route_checking(call.label, call.desk)


def _route_list(call: NewsroomCall) -> str:
    return route_list(newsroom.routes(call.connection))


def _route_clear(call: NewsroomCall) -> str:
    return route_cleared(call.label, newsroom.remove_route(call.connection, call.label))


# The newsroom subcommands (ui.commands names them for the help): each answers the admin with a text.
SUBCOMMANDS: dict[str, Callable[[NewsroomCall], str]] = {
    "watch": _watch,
    "unwatch": _unwatch,
    "watching": _watching,
    "route set": _route_set,
    "route list": _route_list,
    "route clear": _route_clear,
}


def handle_classify_news(
    ack: Ack,
    command: dict[str, Any],
    submitter: JobSubmitter,
    settings: Settings,
    admins: AdminPolicy,
    respond: Respond,
    client: WebClient | None = None,
) -> None:
    """Ack with a short ephemeral note, then enqueue; the worker answers through the command's response_url.

    A newsroom subcommand (:data:`SUBCOMMANDS`) is the admins' instead: the user is checked first (a non-admin
    is told the admins-only line and nothing else: not their text, not the model's labels), then it is parsed and
    carried out by :func:`handle_newsroom`. Any other use counts against the member's rate limit
    (MEMBER_RATE_PER_MINUTE): over it, the command is answered with the polite note (ephemeral, the ack Slack
    needs anyway) and nothing is enqueued.
    """
    text = command.get("text") or ""
    if is_newsroom(text):
        try:
            require_admin(admins, client, command.get("user_id"))
            newsroom = parse_newsroom(text.strip(), lambda: route_labels(submitter.connection))
        except NewsbotError as exc:
            ack(text=exc.user_message, response_type="ephemeral")
            return
        if newsroom is not None:
            handle_newsroom(ack, command, submitter, admins, client, newsroom)
            return
    if submitter.admit(command.get("user_id"), "command") != "admitted":
        ack(text=member_rate_limited(submitter.member_rate_per_minute), response_type="ephemeral")
        return
    if not has_article(text):
        metrics.REQUESTS.labels(kind="command", outcome="usage").inc()
        ack(text=classify_usage(), response_type="ephemeral")
        return
    ack(text=CLASSIFYING, response_type="ephemeral")
    request = ClassifyRequest(
        request_id=command["trigger_id"],
        text=text,
        channel=command["channel_id"],
        user=command.get("user_id"),
        response_url=command.get("response_url"),
        response_type=settings.classify_response_type,
        source="command",
    )
    try:
        submitter.submit_classify(request, delivery_key=f"command:{command['trigger_id']}")
    except RedisError:
        log.exception("could not enqueue /classify-news %s", command["trigger_id"])
        respond(text=QUEUE_DOWN, response_type="ephemeral")


def require_admin(admins: AdminPolicy, client: WebClient | None, user: str | None) -> None:
    """Raise :class:`NotAdminError` unless ``user`` is an admin (checked on the server, with Slack's client)."""
    if client is None:  # Bolt hands every listener its client; only a direct call could lack one
        raise NotAdminError("no Slack client to check the user with")
    admins.require(client, user)


def handle_newsroom(
    ack: Ack,
    command: dict[str, Any],
    submitter: JobSubmitter,
    admins: AdminPolicy,
    client: WebClient | None,
    newsroom: NewsroomCommand,
) -> None:
    """An admin's watch or route subcommand, checked here on the server; answered in the ack, to the admin alone."""
    user = command.get("user_id", "")
    route = newsroom if isinstance(newsroom, RouteCommand) else RouteCommand("list")
    call = NewsroomCall(
        command,
        submitter,
        user,
        command["channel_id"],
        label=route.label,
        desk=route.desk,
        allow_wider=route.allow_wider,
        client=client,
    )
    try:
        require_admin(admins, client, user)
        answer = SUBCOMMANDS[newsroom.name](call)
    except NewsbotError as exc:
        answer = exc.user_message
    except RedisError:
        log.exception("could not carry out %s %s", CLASSIFY_NEWS, command.get("text"))
        answer = QUEUE_DOWN
    ack(text=answer, response_type="ephemeral")


def register(app: App) -> None:
    app.command(CLASSIFY_NEWS)(handle_classify_news)
