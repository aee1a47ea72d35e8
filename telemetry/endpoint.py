"""The operations endpoint of a process: ``GET /healthz`` and ``GET /metrics`` on a small HTTP port.

The bot in Socket Mode and every worker serve it on ``OPS_PORT`` (the bot in HTTP mode answers the same
paths on its Slack port). ``/healthz`` answers 200 with the checks as JSON when all pass, 503 otherwise;
Docker's healthchecks and ``depends_on: condition: service_healthy`` use it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from telemetry.metrics import exposition

log = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"


@dataclass(frozen=True, slots=True)
class Health:
    """The checks of one process (name → passed) and details worth showing (model version, …)."""

    checks: Mapping[str, bool]
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(self.checks.values())

    def to_json(self) -> bytes:
        payload = {"ok": self.ok, "checks": dict(self.checks), **dict(self.details)}
        return json.dumps(payload, ensure_ascii=False, default=str).encode()


HealthProbe = Callable[[], Health]


def health_response(probe: HealthProbe) -> tuple[int, bytes]:
    """Status and JSON body for ``/healthz``; a probe that raises counts as unhealthy."""
    try:
        health = probe()
    except Exception as exc:
        log.exception("health probe failed")
        health = Health(checks={"probe": False}, details={"error": type(exc).__name__})
    return (200 if health.ok else 503), health.to_json()


class OpsServer:
    """A daemon-thread HTTP server for ``/healthz`` and ``/metrics``."""

    def __init__(self, host: str, port: int, probe: HealthProbe) -> None:
        probe_ = probe

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == HEALTH_PATH:
                    status, body = health_response(probe_)
                    self._send(status, body, "application/json")
                elif path == METRICS_PATH:
                    body, content_type = exposition()
                    self._send(200, body, content_type)
                else:
                    self._send(404, b'{"error": "not found"}', "application/json")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("ops: " + format, *args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="ops-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> OpsServer:
        self._thread.start()
        log.info("ops endpoint on port %d (%s, %s)", self.port, HEALTH_PATH, METRICS_PATH)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
