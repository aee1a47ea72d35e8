"""Listeners grouped by kind; each module has ``register(app)``, composed here."""

from __future__ import annotations

from slack_bolt import App

from bot.listeners import actions, channels, commands, events, home, messages, shortcuts, tokens


def register_listeners(app: App) -> None:
    events.register(app)
    messages.register(app)
    commands.register(app)
    shortcuts.register(app)
    actions.register(app)
    home.register(app)
    channels.register(app)
    tokens.register(app)
