"""Secrets are redacted from the whole log line configure_logging writes: messages, tracebacks, stack info."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from common.logs import RedactingFormatter, configure_logging, redact

BOT_TOKEN = "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp"
APP_TOKEN = "xapp-1-A0123456789-1234567890123-0a1b2c3d4e5f"
USER_TOKEN = "xoxp-2222222222-3333333333-QrStUvWxYz"
SIGNING_SECRET = "8f742231b10e8888abcd0123456789ef"


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def call_slack(token: str) -> None:
    # The traceback shows this source line, literals and all, besides the message.
    raise PermissionError(
        f"invalid_auth for {token}: xapp-1-A0123456789-1234567890123-0a1b2c3d4e5f 8f742231b10e8888abcd0123456789ef"
    )


def test_a_logged_traceback_holds_no_token(root_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    assert all(isinstance(h.formatter, RedactingFormatter) for h in logging.getLogger().handlers)
    log = logging.getLogger("test.traceback")
    try:
        call_slack(BOT_TOKEN)
    except PermissionError:
        log.exception("Slack call failed")
    try:
        call_slack("xoxp-2222222222-3333333333-QrStUvWxYz")  # a literal in the calling frame's line
    except PermissionError:
        log.exception("Slack call failed")
    log.warning("stack here", stack_info=True, extra={"token": BOT_TOKEN})
    log.error("secret %s", SIGNING_SECRET)
    err = capsys.readouterr().err
    assert "Traceback" in err and "PermissionError: invalid_auth for xoxb-***" in err
    assert 'call_slack("xoxp-***")' in err  # a source line of the traceback, redacted
    assert "xapp-*** ***" in err
    for secret in (
        BOT_TOKEN,
        APP_TOKEN,
        USER_TOKEN,
        SIGNING_SECRET,
        "AbCdEf",
        "QrStUv",
        "0a1b2c3d4e5f",
        "8f742231b10e",
    ):
        assert secret not in err


def test_hex_secrets_and_all_slack_token_kinds_are_redacted() -> None:
    assert redact(f"secret={SIGNING_SECRET}.") == "secret=***."
    assert redact("short hex deadbeef0123 stays") == "short hex deadbeef0123 stays"
    assert redact("xoxe.xoxp-1-abc and xoxe-1-def") == "xoxe.xoxp-*** and xoxe-***"
