"""HTTP mode: POST /slack/events (Slack-signed requests only) and GET /healthz, served by waitress."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from redis import Redis
from redis.exceptions import RedisError
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
# Slack's own payloads are far below this; anything larger is refused before it is read.
MAX_BODY_BYTES = 1024 * 1024


def make_wsgi_app(app: App, connection: Redis) -> Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]]:
    slack = SlackRequestHandler(app, path=EVENTS_PATH)

    def wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == HEALTH_PATH and environ.get("REQUEST_METHOD") == "GET":
            try:
                connection.ping()
                status, payload = "200 OK", {"status": "ok", "redis": "ok"}
            except RedisError as exc:
                status, payload = "503 Service Unavailable", {"status": "degraded", "redis": str(exc)}
            body = json.dumps(payload).encode()
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        return slack(environ, start_response)

    return wsgi


def serve(app: App, connection: Redis, host: str, port: int) -> None:
    import waitress

    log.info("serving Slack events on http://%s:%d%s", host, port, EVENTS_PATH)
    waitress.serve(
        make_wsgi_app(app, connection),
        host=host,
        port=port,
        threads=16,
        max_request_body_size=MAX_BODY_BYTES,
        ident="newsbot",
    )
