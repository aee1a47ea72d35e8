"""Settings are read once from the environment with clear errors; secrets never reach a log line."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import pytest

from common.exceptions import SettingsError
from common.logs import RedactingFilter, redact
from common.settings import Settings, load_settings


def test_lists_are_comma_separated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ADMIN_USER_IDS", " U1, U2 ,,U3")
    monkeypatch.setenv("FETCH_ALLOWED_NETWORKS", "127.0.0.0/8, 10.1.2.0/24,fd00::/8")
    settings = Settings()
    assert settings.admin_user_ids == ["U1", "U2", "U3"]
    assert settings.fetch_allowed_networks == [
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("10.1.2.0/24"),
        ipaddress.ip_network("fd00::/8"),
    ]


def test_a_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    (tmp_path / ".env").write_text("SLACK_BOT_TOKEN=xoxb-from-dotenv\nREDIS_URL=redis://example:6380/1\n")
    settings = load_settings("SLACK_BOT_TOKEN")
    assert settings.slack_bot_token == "xoxb-from-dotenv"
    assert settings.redis_url == "redis://example:6380/1"


def test_missing_and_malformed_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SLACK_SIGNING_SECRET", raising=False)
    with pytest.raises(SettingsError, match="SLACK_SIGNING_SECRET"):
        load_settings("SLACK_SIGNING_SECRET")
    monkeypatch.setenv("FETCH_ALLOWED_NETWORKS", "not-a-network")
    with pytest.raises(SettingsError, match="FETCH_ALLOWED_NETWORKS"):
        load_settings()
    monkeypatch.delenv("FETCH_ALLOWED_NETWORKS")
    monkeypatch.setenv("CONFIDENCE_THRESHOLD", "1.5")
    with pytest.raises(SettingsError, match="CONFIDENCE_THRESHOLD"):
        load_settings()
    monkeypatch.delenv("CONFIDENCE_THRESHOLD")
    monkeypatch.setenv("NEWSROOM_TIMEZONE", "Asia/Tokio")
    with pytest.raises(SettingsError, match=r"NEWSROOM_TIMEZONE.*unknown time zone 'Asia/Tokio'"):
        load_settings()
    monkeypatch.setenv("NEWSROOM_TIMEZONE", "Europe/Berlin")
    assert str(load_settings().newsroom_tz) == "Europe/Berlin"
    monkeypatch.delenv("NEWSROOM_TIMEZONE")
    assert str(load_settings().newsroom_tz) == "Asia/Tokyo"  # the default: a newsroom in Japan


def test_tokens_are_redacted_in_log_output(caplog: pytest.LogCaptureFixture) -> None:
    assert redact("token xoxb-123-456-abcDEF in text") == "token xoxb-*** in text"
    assert redact("app xapp-1-A1-2-ff00") == "app xapp-***"
    logger = logging.getLogger("test.redaction")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="test.redaction"):
        logger.info("calling Slack with %s", "xoxb-999-888-secret")
    assert "secret" not in caplog.text
    assert "xoxb-***" in caplog.text
