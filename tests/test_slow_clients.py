"""Slow clients cannot shut Slack out of the bot's HTTP port (issue 20, item 3).

With waitress's defaults (100 connections, each idle one kept 120 s) a few hundred half-sent requests filled the
port, and Slack's next request waited unaccepted until they timed out. The bot now takes up to 1,000 connections,
drops one that has sent nothing for 10 s, and answers Slack's requests in between (bot/server.py).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest
import redis

from testkit.fake_slack import FakeSlack
from testkit.processes import product_env, start_bot
from testkit.redis_server import RedisServer, free_port
from testkit.signing import event_body, slack_signature_headers

SECRET = "slow-clients-secret"
# Three times waitress's default connection limit.
SLOW_CLIENTS = 300
# Slack gives up on an answer after 3 s.
SLACK_ACK_S = 3.0


def half_sent(port: int) -> socket.socket:
    """A client that opened a request and stalls: its headers end mid-line, its body never comes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\nContent-Len")
    return sock


def test_a_signed_mention_is_acked_in_time_while_slow_clients_hold_the_port(
    tmp_path: Path, redis_server: RedisServer, fake_slack_server: FakeSlack, redis_conn: redis.Redis
) -> None:
    env = product_env(REDIS_URL=redis_server.url, SLACK_API_URL=fake_slack_server.api_url, SLACK_SIGNING_SECRET=SECRET)
    port = free_port()
    bot = start_bot(env, port, tmp_path)
    slow: list[socket.socket] = []
    try:
        slow = [half_sent(port) for _ in range(SLOW_CLIENTS)]
        event = {"type": "app_mention", "user": "U1", "text": "<@UBOT> 横綱が優勝した。", "ts": "1.1", "channel": "C1"}
        body = event_body(event, "EvSlow1")
        headers = {"Content-Type": "application/json", **slack_signature_headers(body, SECRET)}
        started = time.monotonic()
        try:
            response = httpx.post(f"http://127.0.0.1:{port}/slack/events", content=body, headers=headers, timeout=10)
        except httpx.TimeoutException:
            pytest.fail(f"the signed mention was not answered within 10 s with {SLOW_CLIENTS} slow clients")
        elapsed = time.monotonic() - started
        assert response.status_code == 200
        assert elapsed < SLACK_ACK_S, elapsed
        assert redis_conn.llen("rq:queue:classify") == 1  # acked and enqueued, not just answered
    finally:
        for sock in slow:
            sock.close()
        bot.stop()
