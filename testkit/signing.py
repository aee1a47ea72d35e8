"""Signing request bodies exactly as Slack does (v0 HMAC-SHA256 over ``v0:{timestamp}:{body}``)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode


def slack_signature_headers(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def mention_event(ts: str, text: str, *, channel: str, user: str) -> dict[str, str]:
    """An ``app_mention`` event as Slack sends it (the bot's own mention first in the text)."""
    return {
        "type": "app_mention",
        "user": user,
        "channel": channel,
        "ts": ts,
        "event_ts": ts,
        "text": f"<@UBOT> {text}",
    }


def signed_json_headers(body: bytes, secret: str) -> dict[str, str]:
    return {"Content-Type": "application/json", **slack_signature_headers(body, secret)}


def event_body(event: dict[str, Any], event_id: str, team: str = "T0001", api_app_id: str = "A0001") -> bytes:
    payload = {
        "token": "verification-token-unused",
        "team_id": team,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authorizations": [{"team_id": team, "user_id": "UBOT", "is_bot": True}],
    }
    return json.dumps(payload).encode()


def form_body(fields: dict[str, str]) -> bytes:
    return urlencode(fields).encode()
