"""Slash commands, one module each: ``/classify-news`` (:mod:`.classify_news`) and ``/retrain`` (:mod:`.retrain`).

Each dispatches its subcommands through a table (``SUBCOMMANDS``: name → handler) whose names are those of the
command table in :mod:`ui.commands`, from which the help and usage texts are generated.
"""

from __future__ import annotations

from slack_bolt import App

from bot.listeners.commands import classify_news, retrain


def register(app: App) -> None:
    classify_news.register(app)
    retrain.register(app)
