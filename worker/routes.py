"""The admins' ``/classify-news route <label> #channel``, run by a classify worker (``worker.routes.set_route``).

The bot has checked that the user is an admin and that the label is the current model's; here the desk channel
is checked with conversations.info (a Slack call kept out of the bot's 3-second ack): a channel Slack does not
know (or a private one the bot was not invited to), an archived one or a DM is refused, and nothing is stored.
The admin is answered through the command's response_url, ephemeral.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from common.jobs import RouteRequest
from store import newsroom
from store.newsroom import Route
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


def route_refusal(desk: str, reason_ja: str, reason_en: str) -> str:
    return (
        f":warning: <#{desk}> を転送先にできません: {reason_ja}\n"
        f"<#{desk}> cannot be a desk: {reason_en}\n転送先は変わっていません。/ No route was changed."
    )


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
        answer(
            client,
            request,
            route_refusal(
                request.desk,
                f"チャンネルが見つかりません ({error})。非公開チャンネルなら先にボットを招待してください。",
                f"Slack does not know this channel ({error}); for a private channel, invite the bot first.",
            ),
        )
        return {"error": error}
    if channel.get("is_im") or channel.get("is_mpim") or channel.get("is_archived"):
        answer(
            client,
            request,
            route_refusal(
                request.desk,
                "アーカイブ済み、またはチャンネルではありません。",
                "it is archived, or not a channel.",
            ),
        )
        return {"error": "not_a_desk"}
    newsroom.put_route(rt.connection, Route(label=request.label, channel=request.desk, by=request.user, at=time.time()))
    log.info("%s routed %s to %s", request.user, request.label, request.desk)
    text = (
        f"確信度の高い `{request.label}` の記事を <#{request.desk}> に転送します。\n"
        f"Confident `{request.label}` articles from watched channels will be cross-posted to <#{request.desk}>."
    )
    if not channel.get("is_member"):
        text += (
            f"\n:warning: ボットはまだ <#{request.desk}> にいません。`/invite @newsbot` を実行してください。"
            f"\nThe bot is not in <#{request.desk}> yet: run `/invite @newsbot` there."
        )
    answer(client, request, text)
    return {"label": request.label, "desk": request.desk, "member": bool(channel.get("is_member"))}
