"""The operations endpoint of a process: ``/livez``, ``/readyz``, ``/healthz`` and ``/metrics`` on a small HTTP port.

The bot in Socket Mode and every worker serve it on ``OPS_PORT`` (the bot in HTTP mode answers the same
paths on its Slack port). A process's :class:`Health` holds two sets of checks:

- ``live``: the process is making progress (a worker's job loop turns, its heartbeat renews). ``/livez`` answers
  200 while every one passes, whatever Redis or Slack do: restart the process when it fails (Kubernetes'
  livenessProbe).
- ``checks`` (readiness): what it needs to do its work (Redis reachable, a model loaded, the Slack token valid).
  ``/readyz`` answers 200 when the process is alive and every readiness check passes: send it no work (or wait)
  while it fails, never restart it for that.

``/healthz`` is the combined answer, the same as ``/readyz``: Docker's healthchecks and ``depends_on:
condition: service_healthy`` use it. Each answers JSON with ``ok``, ``live``, ``checks`` and the details.

A port already taken never stops a process (:func:`serve_ops`): it logs one line and serves no endpoint.

Slow or idle clients cannot pile up: at most ``OPS_MAX_THREADS`` requests are handled at once (a connection beyond
them is closed at once), a connection that sends nothing for ``OPS_IDLE_TIMEOUT_S`` is closed, and a client that
hangs up mid-answer is a debug line, not a traceback. The endpoint binds 127.0.0.1 unless OPS_HOST says otherwise.
"""

from __future__ import annotations

import errno
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
LIVE_PATH = "/livez"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"


@dataclass(frozen=True, slots=True)
class Health:
    """The checks of one process: readiness (``checks``, name → passed), liveness (``live``), and details worth
    showing (model version, …)."""

    checks: Mapping[str, bool]
    details: Mapping[str, Any] = field(default_factory=dict)
    live: Mapping[str, bool] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        return all(self.live.values())

    @property
    def ok(self) -> bool:
        """Alive and ready: the answer of ``/readyz`` and ``/healthz``."""
        return self.alive and all(self.checks.values())

    def to_json(self) -> bytes:
        payload: dict[str, Any] = {"ok": self.ok}
        if self.live:
            payload["live"] = dict(self.live)
        payload["checks"] = dict(self.checks)
        payload.update(self.details)
        return json.dumps(payload, ensure_ascii=False, default=str).encode()


HealthProbe = Callable[[], Health]

# A probe or a scrape takes milliseconds: 8 at once is plenty for Prometheus, a healthcheck and a person with curl.
OPS_MAX_THREADS = 8
# Prometheus and the healthchecks send their request as soon as they connect.
OPS_IDLE_TIMEOUT_S = 5.0


class _BoundedHTTPServer(ThreadingHTTPServer):
    """A thread per request, at most ``max_threads`` at once; the connections beyond them are closed unanswered."""

    daemon_threads = True
    request_queue_size = 128  # the listen backlog (socketserver's 5 made a burst of connections wait on SYN retries)

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], max_threads: int) -> None:
        self._slots = threading.BoundedSemaphore(max_threads)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.debug("ops: %d requests in hand; closing the connection of %s", OPS_MAX_THREADS, client_address)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (reset, broken pipe, timed out): one debug line, never a traceback on stderr."""
        log.debug("ops: connection from %s ended early", client_address, exc_info=True)


def _probe(probe: HealthProbe) -> Health:
    try:
        return probe()
    except Exception as exc:
        log.exception("health probe failed")
        return Health(checks={"probe": False}, details={"error": type(exc).__name__})


def health_response(probe: HealthProbe) -> tuple[int, bytes]:
    """Status and JSON body for ``/healthz`` and ``/readyz``; a probe that raises counts as unhealthy."""
    health = _probe(probe)
    return (200 if health.ok else 503), health.to_json()


def liveness_response(probe: HealthProbe) -> tuple[int, bytes]:
    """Status and JSON body for ``/livez``: 200 while every liveness check passes, the readiness ones ignored.

    A probe that raises still answers 200 here: the endpoint answered, so the process runs; its readiness says
    what is wrong."""
    health = _probe(probe)
    body = json.dumps({"ok": health.alive, "live": dict(health.live)}).encode()
    return (200 if health.alive else 503), body


class OpsServer:
    """A daemon-thread HTTP server for ``/healthz`` and ``/metrics``."""

    def __init__(
        self,
        host: str,
        port: int,
        probe: HealthProbe,
        *,
        max_threads: int = OPS_MAX_THREADS,
        idle_timeout_s: float = OPS_IDLE_TIMEOUT_S,
    ) -> None:
        probe_ = probe

        class Handler(BaseHTTPRequestHandler):
            timeout = idle_timeout_s  # the socket's: a silent client is dropped (StreamRequestHandler.setup)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path in (HEALTH_PATH, READY_PATH):
                    status, body = health_response(probe_)
                    self._send(status, body, "application/json")
                elif path == LIVE_PATH:
                    status, body = liveness_response(probe_)
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

        self._server = _BoundedHTTPServer((host, port), Handler, max_threads)
        self._thread = threading.Thread(target=self._server.serve_forever, name="ops-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> OpsServer:
        self._thread.start()
        log.info(
            "ops endpoint on port %d (%s, %s, %s, %s)", self.port, LIVE_PATH, READY_PATH, HEALTH_PATH, METRICS_PATH
        )
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve_ops(host: str, port: int, probe: HealthProbe, *, setting: str = "OPS_PORT") -> OpsServer | None:
    """Bind and start the ops endpoint, or log one line and serve none: a port that cannot be bound (another
    worker on this host has it) never stops the process. Call it before loading anything slow, so that the line
    comes at once. ``setting`` names what to change in that line (``OPS_PORT``, or a worker's ``--ops-port``)."""
    try:
        server = OpsServer(host, port, probe)
    except OSError as exc:
        reason = "is taken (another process on this host serves it)" if exc.errno == errno.EADDRINUSE else "failed"
        log.warning(
            "ops port %s:%d %s: %s; this process serves no /healthz or /metrics and works on. "
            "Give each process on a host its own port with %s (0: none)",
            host,
            port,
            reason,
            exc.strerror or exc,
            setting,
        )
        return None
    return server.start()
