"""A local fake of Slack's Socket Mode WebSocket endpoint (the URL apps.connections.open hands out).

It greets each client with ``hello`` as Slack does, lets the test push envelopes (``events_api``,
``slash_commands``, …) and records the acknowledgements the client sends back, by envelope id.
"""

from __future__ import annotations

import json
import queue
import threading
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from testkit.waiting import wait_until


class FakeSocketMode:
    def __init__(self) -> None:
        self.acks: dict[str, dict[str, Any]] = {}
        self.connected = threading.Event()
        self._outbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self._server = serve(self._handle, "127.0.0.1", 0)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FakeSocketMode:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}/link"

    def send(self, envelope_type: str, envelope_id: str, payload: dict[str, Any], retry_attempt: int = 0) -> None:
        self._outbox.put(
            {
                "envelope_id": envelope_id,
                "type": envelope_type,
                "payload": payload,
                "accepts_response_payload": envelope_type != "events_api",
                "retry_attempt": retry_attempt,
                "retry_reason": "timeout" if retry_attempt else "",
            }
        )

    def wait_ack(self, envelope_id: str, timeout: float = 10.0) -> dict[str, Any]:
        wait_until(
            lambda: envelope_id in self.acks,
            f"the ack of envelope {envelope_id}",
            timeout,
            details=lambda: f"acks: {list(self.acks)}",
        )
        return self.acks[envelope_id]

    def _handle(self, ws: ServerConnection) -> None:
        ws.send(json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0001"}}))
        self.connected.set()
        try:
            while True:
                try:
                    envelope = self._outbox.get(timeout=0.05)
                    ws.send(json.dumps(envelope))
                except queue.Empty:
                    pass
                try:
                    message = ws.recv(timeout=0.05)
                except TimeoutError:
                    continue
                data = json.loads(message)
                if "envelope_id" in data:
                    self.acks[data["envelope_id"]] = data
        except ConnectionClosed:
            return
