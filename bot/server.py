"""HTTP mode: POST /slack/events (Slack-signed requests only), GET /healthz (and GET /metrics with
METRICS_ON_SLACK_PORT), served by waitress with limits that keep slow clients from shutting Slack out.

This server is the one place a request's Slack signature is checked (Bolt's own RequestVerification is off,
see bot/app.py): it must authenticate the raw bytes before it parses them, and Bolt only sees them parsed.
Bad requests are answered the way Slack expects before Bolt sees them:

- no valid signature, a malformed timestamp, or one more than 5 minutes off (a replay): ``401``;
- a body over ``MAX_BODY_BYTES``: ``413`` (waitress refuses it without reading it);
- a signed body that is not UTF-8, not JSON, or a form whose ``payload`` is not JSON: ``400``.

What Bolt answers (bot/app.py's error handler) is passed through unchanged: ``200`` for what a listener
handled and for an event type nobody listens to (a non-2xx would make Slack retry it), ``404`` for another
request nobody handles, ``500`` when a listener failed (Redis down), so that Slack redelivers the event.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import re
import signal
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from redis import Redis
from redis.exceptions import RedisError
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from telemetry.metrics import exposition

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
# Slack's own payloads are far below this; anything larger is refused before it is read.
MAX_BODY_BYTES = 1024 * 1024
# Slow clients (waitress's own defaults, 100 connections each kept 120 s while idle, let 100 half-sent requests
# shut Slack out for two minutes). Waitress holds a waiting connection in its event loop, not in a thread, so many
# cost little: a connection that has sent nothing for CHANNEL_TIMEOUT_S is closed (Slack sends a whole request at
# once, in milliseconds), checked every CLEANUP_INTERVAL_S, and CONNECTION_LIMIT of them (poll(), not select(), so
# past 1,024 descriptors) are needed to fill the port: at 10 s each, a sustained 100 new slow connections a second.
# A flood beyond that is a buffering reverse proxy's job (docs/deploy.md).
CONNECTION_LIMIT = 1000
CHANNEL_TIMEOUT_S = 10
CLEANUP_INTERVAL_S = 2
THREADS = 16
# Slack's rule: a request whose timestamp is more than 5 minutes off may be a replay.
MAX_CLOCK_SKEW_S = 5 * 60
# Slack's timestamps are Unix seconds in ASCII digits. Anything else (other Unicode digits, a sign, a fraction,
# thousands of digits that int() refuses) is refused as unsigned rather than parsed.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")

WSGIApp = Callable[["WSGIEnvironment", "StartResponse"], Iterable[bytes]]


def _respond(start_response: StartResponse, status: str, payload: dict[str, Any]) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _read_body(environ: WSGIEnvironment) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ["wsgi.input"]
    body: bytes = stream.read(min(length, MAX_BODY_BYTES)) if length > 0 else b""
    return body


def signature_ok(secret: str, raw: bytes, timestamp: str, signature: str, now: float | None = None) -> bool:
    """Slack's v0 signature over the raw bytes, with the timestamp at most 5 minutes off (no replays)."""
    if not secret or not _TIMESTAMP.fullmatch(timestamp) or not signature.isascii() or not signature.startswith("v0="):
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > MAX_CLOCK_SKEW_S:
        return False
    expected = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"v0={expected}", signature)


def parse_slack_body(raw: bytes, content_type: str) -> dict[str, Any]:
    """Parse a Slack request body like Bolt does; raise ValueError for anything malformed."""
    text = raw.decode("utf-8")  # UnicodeDecodeError is a ValueError
    if "application/json" in content_type or text.startswith("{"):
        parsed = json.loads(text)
        if not isinstance(parsed, dict):
            raise ValueError("JSON body is not an object")
        return parsed
    form = {k: v[0] for k, v in parse_qs(text, keep_blank_values=True, strict_parsing=bool(text)).items()}
    if "payload" in form:
        payload = json.loads(form["payload"])
        if not isinstance(payload, dict):
            raise ValueError("payload is not an object")
        return payload
    return form


def make_wsgi_app(app: App, connection: Redis, signing_secret: str, metrics: bool = False) -> WSGIApp:
    """The Slack port's WSGI app; ``metrics``: also answer ``GET /metrics`` (METRICS_ON_SLACK_PORT: this port is
    public, so by default the metrics are only on the ops port)."""
    slack = SlackRequestHandler(app, path=EVENTS_PATH)

    def wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO"), environ.get("REQUEST_METHOD")
        if path == HEALTH_PATH and method == "GET":
            try:
                connection.ping()
            except RedisError as exc:
                # The answer is public (this is Slack's port): it says what, never where (the exception names the
                # internal host and port). The log line has the detail.
                log.warning("health check: Redis unreachable: %s", exc)
                return _respond(
                    start_response, "503 Service Unavailable", {"status": "degraded", "redis": "unreachable"}
                )
            return _respond(start_response, "200 OK", {"status": "ok", "redis": "ok"})
        if metrics and path == METRICS_PATH and method == "GET":
            body, content_type = exposition()
            start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
            return [body]
        if path != EVENTS_PATH:
            return _respond(start_response, "404 Not Found", {"error": "not found"})
        if method != "POST":
            return _respond(start_response, "405 Method Not Allowed", {"error": "use POST"})

        raw = _read_body(environ)
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
        signature = environ.get("HTTP_X_SLACK_SIGNATURE", "")
        if not signature_ok(signing_secret, raw, timestamp, signature):
            log.warning("refused a request with an invalid or stale signature")
            return _respond(start_response, "401 Unauthorized", {"error": "invalid request"})
        try:
            parse_slack_body(raw, environ.get("CONTENT_TYPE", ""))
        except ValueError as exc:
            log.warning("refused a signed but malformed request: %s", exc)
            return _respond(start_response, "400 Bad Request", {"error": "malformed body"})

        # Hand Bolt the body we already read (and verified: Bolt does not verify it again).
        environ["wsgi.input"] = io.BytesIO(raw)
        environ["CONTENT_LENGTH"] = str(len(raw))
        return slack(environ, start_response)

    return wsgi


def serve(app: App, connection: Redis, signing_secret: str, host: str, port: int, metrics: bool = False) -> None:
    """Serve until SIGTERM/SIGINT; then stop accepting, let requests in hand finish, and return."""
    from waitress.server import create_server

    def stop(signum: int, _frame: object) -> None:
        log.info("signal %d: finishing requests in hand, then exiting", signum)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    server = create_server(
        make_wsgi_app(app, connection, signing_secret, metrics),
        host=host,
        port=port,
        threads=THREADS,
        connection_limit=CONNECTION_LIMIT,
        channel_timeout=CHANNEL_TIMEOUT_S,
        cleanup_interval=CLEANUP_INTERVAL_S,
        asyncore_use_poll=True,
        max_request_body_size=MAX_BODY_BYTES,
        ident="newsbot",
    )
    log.info("serving Slack events on http://%s:%d%s", host, port, EVENTS_PATH)
    server.run()  # waitress catches SystemExit and shuts its task threads down (waiting for those in hand)
    log.info("bot stopped")
