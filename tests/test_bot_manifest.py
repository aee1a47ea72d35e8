"""manifest.yml declares everything the listeners answer, with the scopes they need, and Socket Mode on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml

from bot.listeners import commands
from testkit.processes import REPO_ROOT
from ui.commands import COMMANDS, usage_hint
from ui.ids import CLASSIFY_MESSAGE_CALLBACK

SCOPES = {
    "app_mentions:read",
    "channels:history",
    "channels:read",
    "chat:write",
    "commands",
    "files:write",
    "groups:history",
    "groups:read",
    "im:history",
    "reactions:write",
    "usergroups:read",
    "users:read",
}
EVENTS = {
    "app_home_opened",
    "app_mention",
    "message.channels",
    "message.groups",
    "message.im",
    # channel lifecycle (bot.listeners.channels): watches and routes follow their channels
    "channel_archive",
    "group_archive",
    "channel_deleted",
    "group_deleted",
    "channel_left",
    "group_left",
    "member_left_channel",
    "channel_shared",
    "channel_unshared",
    "app_uninstalled",
    "tokens_revoked",
}


def manifest() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO_ROOT / "manifest.yml").read_text(encoding="utf-8"))
    return data


def test_manifest_declares_commands_shortcut_interactivity_scopes_and_socket_mode() -> None:
    data = manifest()
    features = data["features"]
    assert {c["command"] for c in features["slash_commands"]} == {"/classify-news", "/retrain"}
    escape = {c["command"]: c["should_escape"] for c in features["slash_commands"]}
    # /classify-news escapes: `route <label> #channel` gets the channel as <#C…|name>, with its id.
    assert escape == {"/classify-news": True, "/retrain": False}
    ((shortcut),) = features["shortcuts"]
    assert (shortcut["type"], shortcut["callback_id"]) == ("message", CLASSIFY_MESSAGE_CALLBACK)
    assert set(data["oauth_config"]["scopes"]["bot"]) == SCOPES
    settings = data["settings"]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is True
    assert set(settings["event_subscriptions"]["bot_events"]) == EVENTS
    home = features["app_home"]
    assert home["home_tab_enabled"] is True and home["messages_tab_enabled"] is True
    assert home["messages_tab_read_only_enabled"] is False  # people write to the bot there


def test_readme_and_the_newsroom_guide_name_every_scope_and_event() -> None:
    """The README's "Creating the Slack app" step lists the scopes and events; docs/newsroom.md says why each."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    step = readme.split("## Creating the Slack app", 1)[1].split("\n## ", 1)[0]
    guide = (REPO_ROOT / "docs" / "newsroom.md").read_text(encoding="utf-8")
    for name in sorted(SCOPES | EVENTS):
        assert f"`{name}`" in step, f"README's 'Creating the Slack app' does not name `{name}`"
    for name in sorted(SCOPES - {"files:write", "users:read", "commands", "app_mentions:read"}):
        assert f"`{name}`" in guide, f"docs/newsroom.md does not say why `{name}` is asked for"


def test_every_event_the_bot_listens_to_is_subscribed() -> None:
    """Each ``app.event(...)`` has its subscription (``message`` as message.channels/groups/im)."""
    source = "\n".join(p.read_text(encoding="utf-8") for p in (REPO_ROOT / "bot" / "listeners").glob("*.py"))
    registered = {part.split('"')[1] for part in source.split("app.event(")[1:]}
    subscribed = {e.split(".")[0] for e in manifest()["settings"]["event_subscriptions"]["bot_events"]}
    assert registered <= subscribed


class CommandRecorder:
    """Stands in for Bolt's App: records the commands registered with it."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    def command(self, name: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
        self.commands.append(name)
        return lambda listener: listener


def test_every_command_the_bot_registers_is_in_the_manifest_and_the_command_table() -> None:
    app = CommandRecorder()
    commands.register(app)  # type: ignore[arg-type]
    declared = {c["command"] for c in manifest()["features"]["slash_commands"]}
    assert sorted(app.commands) == sorted(declared) == sorted(c.name for c in COMMANDS)


def test_the_manifest_usage_hints_are_the_command_tables() -> None:
    """What Slack shows as a command is typed cannot drift from what the bot parses: each usage_hint is the one
    ui.commands.usage_hint generates (paste it into manifest.yml when a subcommand changes)."""
    hints = {c["command"]: c.get("usage_hint") for c in manifest()["features"]["slash_commands"]}
    assert hints == {c.name: usage_hint(c.name) for c in COMMANDS}
