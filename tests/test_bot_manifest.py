"""manifest.yml declares everything the listeners answer, with the scopes they need, and Socket Mode on."""

from __future__ import annotations

from typing import Any

import yaml

from bot.listeners.shortcuts import CLASSIFY_MESSAGE_CALLBACK
from testkit.processes import REPO_ROOT


def manifest() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO_ROOT / "manifest.yml").read_text(encoding="utf-8"))
    return data


def test_manifest_declares_commands_shortcut_interactivity_scopes_and_socket_mode() -> None:
    data = manifest()
    features = data["features"]
    assert {c["command"] for c in features["slash_commands"]} == {"/classify-news", "/retrain"}
    assert all(not c["should_escape"] for c in features["slash_commands"])  # links arrive as Slack markup
    ((shortcut),) = features["shortcuts"]
    assert (shortcut["type"], shortcut["callback_id"]) == ("message", CLASSIFY_MESSAGE_CALLBACK)
    assert set(data["oauth_config"]["scopes"]["bot"]) == {
        "app_mentions:read",
        "chat:write",
        "commands",
        "files:write",
        "users:read",
    }
    settings = data["settings"]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is True
    assert settings["event_subscriptions"]["bot_events"] == ["app_mention"]


def test_every_command_the_bot_registers_is_in_the_manifest() -> None:
    source = "\n".join(p.read_text(encoding="utf-8") for p in (REPO_ROOT / "bot" / "listeners").glob("*.py"))
    declared = {c["command"] for c in manifest()["features"]["slash_commands"]}
    registered = {part.split('"')[1] for part in source.split("app.command(")[1:]}
    assert registered == declared
