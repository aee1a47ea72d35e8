"""Signed Slack requests to the bot's HTTP endpoint: slash commands, message shortcuts and block actions."""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx

from testkit.signing import form_body, slack_signature_headers

SECRET = "test-signing-secret"
_trigger = itertools.count(1)


def trigger_id() -> str:
    return f"{next(_trigger)}.{id(_trigger)}.trigger"


def post_form(url: str, fields: dict[str, str], secret: str = SECRET) -> httpx.Response:
    body = form_body(fields)
    headers = {"Content-Type": "application/x-www-form-urlencoded", **slack_signature_headers(body, secret)}
    return httpx.post(url, content=body, headers=headers, timeout=20)


def slash_command(
    url: str, command: str, text: str, *, user: str, response_url: str, channel: str = "C42", trigger: str | None = None
) -> httpx.Response:
    return post_form(
        url,
        {
            "token": "unused",
            "team_id": "T0001",
            "team_domain": "fake",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A0001",
            "response_url": response_url,
            "trigger_id": trigger or trigger_id(),
        },
    )


def interaction(url: str, payload: dict[str, Any], secret: str = SECRET) -> httpx.Response:
    return post_form(url, {"payload": json.dumps(payload, ensure_ascii=False)}, secret)


def message_shortcut(url: str, message: dict[str, Any], *, user: str, channel: str = "C42") -> httpx.Response:
    return interaction(
        url,
        {
            "type": "message_action",
            "callback_id": "classify_message",
            "trigger_id": trigger_id(),
            "action_ts": "1700000000.1",
            "team": {"id": "T0001", "domain": "fake"},
            "user": {"id": user, "name": user.lower(), "team_id": "T0001"},
            "channel": {"id": channel, "name": "general"},
            "message": message,
            "message_ts": message["ts"],
            "response_url": "http://127.0.0.1:9/unused",
            "api_app_id": "A0001",
            "token": "unused",
        },
    )


def block_action(
    url: str,
    action: dict[str, Any],
    *,
    user: str,
    message: dict[str, Any] | None,
    response_url: str,
    channel: str = "C42",
    ephemeral: bool = False,
) -> httpx.Response:
    container: dict[str, Any] = {"type": "message", "channel_id": channel, "is_ephemeral": ephemeral}
    if message is not None:
        container["message_ts"] = message["ts"]
    payload: dict[str, Any] = {
        "type": "block_actions",
        "trigger_id": trigger_id(),
        "team": {"id": "T0001", "domain": "fake"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0001"},
        "api_app_id": "A0001",
        "token": "unused",
        "container": container,
        "channel": {"id": channel, "name": "general"},
        "response_url": response_url,
        "actions": [{"action_ts": "1700000000.2", **action}],
    }
    if message is not None:
        payload["message"] = message
    return interaction(url, payload)
