"""The bot's HTTP endpoint refuses bad requests the way Slack expects, and enqueues nothing for them."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from slack_bolt import BoltRequest

from bot.app import build_app
from bot.server import signature_ok
from bot.submit import JobSubmitter
from common.settings import Settings
from testkit.fake_slack import FakeSlack
from testkit.processes import Proc, product_env, start_bot
from testkit.redis_server import RedisServer, free_port
from testkit.signing import event_body, form_body, slack_signature_headers

SECRET = "test-signing-secret"


@pytest.fixture(scope="module")
def bot(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, fake_slack_server: FakeSlack
) -> Iterator[str]:
    env = product_env(REDIS_URL=redis_server.url, SLACK_API_URL=fake_slack_server.api_url, SLACK_SIGNING_SECRET=SECRET)
    port = free_port()
    proc = start_bot(env, port, tmp_path_factory.mktemp("bot"))
    yield f"http://127.0.0.1:{port}"
    proc.stop()


def signed(body: bytes, content_type: str = "application/json", secret: str = SECRET, **kw: int) -> dict[str, str]:
    return {"Content-Type": content_type, **slack_signature_headers(body, secret, **kw)}


def nothing_enqueued(conn: redis.Redis) -> bool:
    return conn.llen("rq:queue:classify") == 0 and not conn.keys("rq:job:*")


MENTION = {"type": "app_mention", "user": "U1", "text": "<@UBOT> 記事", "ts": "1.1", "channel": "C1"}


@pytest.mark.parametrize(
    ("case", "headers"),
    [
        ("unsigned", {"Content-Type": "application/json"}),
        ("wrong secret", signed(event_body(MENTION, "EvA"), secret="not-the-secret")),
        ("replayed: timestamp 6 minutes old", signed(event_body(MENTION, "EvA"), timestamp=int(time.time()) - 360)),
        ("signature of another body", signed(b'{"type":"event_callback"}')),
    ],
)
def test_bad_signatures_get_401(bot: str, redis_conn: redis.Redis, case: str, headers: dict[str, str]) -> None:
    response = httpx.post(f"{bot}/slack/events", content=event_body(MENTION, "EvA"), headers=headers, timeout=10)
    assert response.status_code == 401, case
    assert nothing_enqueued(redis_conn)


def signed_with_timestamp(body: bytes, timestamp: str, secret: str = SECRET) -> dict[str, bytes]:
    """Headers signed with the right secret over ``timestamp`` as given (sent as latin-1 bytes, as HTTP carries)."""
    raw_ts = timestamp.encode("latin-1")
    digest = hmac.new(secret.encode(), b"v0:" + raw_ts + b":" + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": b"application/json",
        "X-Slack-Request-Timestamp": raw_ts,
        "X-Slack-Signature": f"v0={digest}".encode(),
    }


@pytest.mark.parametrize(
    ("case", "timestamp"),
    [
        pytest.param(case, timestamp, id=case)  # the case names as ids: the same in every process (pytest-xdist)
        for case, timestamp in [
            ("a Unicode digit (superscript two)", "²"),
            ("5,000 digits", "9" * 5000),
            ("empty", ""),
            ("negative", f"-{int(time.time())}"),
            ("float", f"{int(time.time())}.5"),
        ]
    ],
)
def test_malformed_timestamps_get_401(bot: str, redis_conn: redis.Redis, case: str, timestamp: str) -> None:
    body = event_body(MENTION, "EvTs")
    response = httpx.post(
        f"{bot}/slack/events", content=body, headers=signed_with_timestamp(body, timestamp), timeout=10
    )
    assert response.status_code == 401, (case, response.text)
    assert response.json() == {"error": "invalid request"}
    assert nothing_enqueued(redis_conn)


def test_a_signature_with_non_ascii_characters_gets_401(bot: str, redis_conn: redis.Redis) -> None:
    body = event_body(MENTION, "EvSig")
    headers = {**signed(body), "X-Slack-Signature": "v0=²²".encode("latin-1")}
    response = httpx.post(f"{bot}/slack/events", content=body, headers=headers, timeout=10)
    assert response.status_code == 401
    assert nothing_enqueued(redis_conn)


@pytest.mark.parametrize(
    "timestamp",
    ["١٧٠٠٠٠٠٠٠٠", "１７００００００００", "1700000000\n", "+1700000000", "1_700_000_000"],
    ids=["Arabic-Indic digits", "fullwidth digits", "trailing newline", "plus sign", "underscores"],
)
def test_only_ascii_digit_timestamps_are_accepted(timestamp: str) -> None:
    """Spellings that int() accepts, correctly signed over, are still not Slack's: refused."""
    body = b'{"type":"event_callback"}'

    def sign(ts: str) -> str:
        return "v0=" + hmac.new(SECRET.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()

    assert int(timestamp) == 1_700_000_000
    assert signature_ok(SECRET, body, "1700000000", sign("1700000000"), now=1_700_000_000)
    assert not signature_ok(SECRET, body, timestamp, sign(timestamp), now=1_700_000_000)


@pytest.mark.parametrize(
    ("case", "body", "content_type"),
    [
        ("malformed JSON", b'{"type": "event_callback", "event": ', "application/json"),
        ("JSON that is not an object", b"[1, 2, 3]", "application/json"),
        ("not UTF-8", b"\xff\xfe\x00garbage", "application/json"),
        ("form whose payload is not JSON", form_body({"payload": "{not json"}), "application/x-www-form-urlencoded"),
    ],
)
def test_signed_but_malformed_bodies_get_400(
    bot: str, redis_conn: redis.Redis, case: str, body: bytes, content_type: str
) -> None:
    response = httpx.post(f"{bot}/slack/events", content=body, headers=signed(body, content_type), timeout=10)
    assert response.status_code == 400, case
    assert nothing_enqueued(redis_conn)


def test_a_body_over_the_limit_is_refused_unread(bot: str, redis_conn: redis.Redis) -> None:
    body = event_body({**MENTION, "text": "あ" * 600_000}, "EvBig")  # ~1.8 MB of UTF-8
    response = httpx.post(f"{bot}/slack/events", content=body, headers=signed(body), timeout=10)
    assert response.status_code == 413
    assert nothing_enqueued(redis_conn)


def test_unknown_event_types_are_acknowledged_and_ignored(bot: str, redis_conn: redis.Redis) -> None:
    body = event_body({"type": "reaction_added", "user": "U1", "reaction": "eyes"}, "EvR")
    response = httpx.post(f"{bot}/slack/events", content=body, headers=signed(body), timeout=10)
    assert response.status_code == 200
    assert json.loads(response.content) == {"ignored": True}
    assert nothing_enqueued(redis_conn)


def test_the_bolt_app_leaves_verification_to_the_server_and_answers_unhandled_requests(
    redis_conn: redis.Redis, fake_slack: FakeSlack
) -> None:
    """The server checks each signature once; Bolt, behind it, does not check again (a request reaching it is
    already verified), and Bolt's own unhandled-request error decides 200 (an event) or 404 (anything else)."""
    settings = Settings(slack_bot_token="xoxb-test", slack_api_url=fake_slack.api_url, slack_signing_secret=SECRET)
    app = build_app(settings, JobSubmitter(redis_conn))
    json_headers = {"content-type": "application/json"}  # and no signature headers at all

    challenge = json.dumps({"type": "url_verification", "challenge": "c-9", "token": "t"})
    answer = app.dispatch(BoltRequest(body=challenge, headers=json_headers))
    assert answer.status == 200 and "c-9" in answer.body

    reaction = event_body({"type": "reaction_added", "user": "U1", "reaction": "eyes"}, "EvR2").decode()
    answer = app.dispatch(BoltRequest(body=reaction, headers=json_headers))
    assert (answer.status, json.loads(answer.body)) == (200, {"ignored": True})

    command = form_body({"command": "/unknown", "text": "", "trigger_id": "t1", "user_id": "U1", "team_id": "T0001"})
    answer = app.dispatch(BoltRequest(body=command.decode()))
    assert answer.status == 404
    assert nothing_enqueued(redis_conn)


def test_url_verification_challenge_is_answered(bot: str) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "t"}).encode()
    response = httpx.post(f"{bot}/slack/events", content=body, headers=signed(body), timeout=10)
    assert response.status_code == 200
    assert "c-123" in response.text


def test_other_paths_and_methods(bot: str) -> None:
    assert httpx.get(f"{bot}/slack/events", timeout=5).status_code == 405
    assert httpx.get(f"{bot}/nope", timeout=5).status_code == 404
    assert httpx.get(f"{bot}/healthz", timeout=5).json() == {"status": "ok", "redis": "ok"}


def test_sigterm_stops_the_bot_cleanly(tmp_path: Path, redis_server: RedisServer, fake_slack: FakeSlack) -> None:
    env = product_env(REDIS_URL=redis_server.url, SLACK_API_URL=fake_slack.api_url, SLACK_SIGNING_SECRET=SECRET)
    proc: Proc = start_bot(env, free_port(), tmp_path)
    proc.signal(signal.SIGTERM)
    assert proc.wait_exit(15) == 0, proc.log()
    assert "bot stopped" in proc.log()


@pytest.mark.parametrize(
    ("args", "missing"),
    [
        (["-m", "bot", "--http"], "SLACK_SIGNING_SECRET"),
        (["-m", "bot"], "SLACK_APP_TOKEN"),
        (["-m", "worker"], "SLACK_BOT_TOKEN"),
    ],
)
def test_a_missing_setting_stops_the_process_with_one_line(tmp_path: Path, args: list[str], missing: str) -> None:
    env = product_env()
    for name in ("SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        env.pop(name, None)
    if missing == "SLACK_BOT_TOKEN":
        env.pop("SLACK_BOT_TOKEN")
    done = subprocess.run([sys.executable, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert missing in lines[0]
