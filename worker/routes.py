"""The admins' ``/classify-news route <label> #channel``, run by a classify worker (``worker.routes.set_route``).

The bot has checked that the user is an admin and that the label is the current model's; here the desk channel
is checked with conversations.info (a Slack call kept out of the bot's 3-second ack): a channel Slack does not
know (or a private one the bot was not invited to), an archived one or a DM is refused, and nothing is stored.
The admin is answered through the command's response_url, ephemeral, in :mod:`ui.newsroom`'s words, with the
desk's audience and what it means for articles of narrower channels; ``allow-wider`` records the desk's audience
the admin accepted (``Route.allow_wider``) and the answer warns with the risk.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from common.audience import Audience
from common.jobs import RouteRequest
from store import newsroom
from store.newsroom import Route
from ui.newsroom import NOT_A_DESK, desk_unknown, route_refusal, route_set
from worker.jobs import in_job_context, runtime

log = logging.getLogger(__name__)


def answer(client: WebClient, request: RouteRequest, text: str) -> None:
    """Tell the admin who asked: through the command's response_url, else an ephemeral note in its channel."""
    if request.response_url:
        response = WebhookClient(request.response_url, timeout=15).send(text=text, response_type="ephemeral")
        if response.status_code == 200:
            return
        log.warning("response_url answered %s; falling back to chat.postEphemeral", response.status_code)
    client.chat_postEphemeral(channel=request.channel, user=request.user, text=text)


@in_job_context
def set_route(payload: dict[str, Any]) -> dict[str, Any]:
    """An admin's ``route <label> #channel`` (admin and label checked by the bot): check the channel, store it."""
    rt = runtime()
    request = RouteRequest.from_dict(payload)
    client = rt.replier.client
    try:
        channel: dict[str, Any] = client.conversations_info(channel=request.desk).get("channel") or {}
    except SlackApiError as exc:
        error = str(exc.response.get("error") or "")
        log.info("route %s → %s refused: conversations.info %s", request.label, request.desk, error)
        answer(client, request, route_refusal(request.desk, *desk_unknown(error)))
        return {"error": error}
    if channel.get("is_im") or channel.get("is_mpim") or channel.get("is_archived"):
        answer(client, request, route_refusal(request.desk, *NOT_A_DESK))
        return {"error": "not_a_desk"}
    audience = Audience.of(channel)
    route = Route(
        label=request.label,
        channel=request.desk,
        by=request.user,
        at=time.time(),
        allow_wider=audience.key if request.allow_wider else "",
    )
    newsroom.put_route(rt.connection, route)
    log.info(
        "%s routed %s to %s (%s%s)",
        request.user,
        request.label,
        request.desk,
        audience.key,
        route.allow_wider and ", allow-wider",
    )
    member = bool(channel.get("is_member"))
    answer(client, request, route_set(request.label, request.desk, member, audience, request.allow_wider))
    return {"label": request.label, "desk": request.desk, "member": member, "audience": audience.key}
