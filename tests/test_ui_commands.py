"""One command table (ui.commands): the bot dispatches on its subcommand names, and every help text names them all."""

from __future__ import annotations

import pytest

from bot.listeners.commands import classify_news, retrain
from bot.newsroom import parse_newsroom
from bot.options import parse_retrain
from common.exceptions import InvalidRetrainOptionsError, RouteRefusedError
from ui.commands import (
    CLASSIFY_NEWS,
    COMMANDS,
    RETRAIN,
    classify_usage,
    command,
    home_help,
    newsroom_usage,
    retrain_usage,
    subcommand_names,
)


def test_the_bots_dispatch_tables_have_exactly_the_tables_subcommands() -> None:
    assert set(classify_news.SUBCOMMANDS) == subcommand_names(CLASSIFY_NEWS)
    assert set(retrain.SUBCOMMANDS) == subcommand_names(RETRAIN)
    assert {c.name for c in COMMANDS} == {CLASSIFY_NEWS, RETRAIN}


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("watch", "watch"),
        ("unwatch", "unwatch"),
        ("watching", "watching"),
        ("route smax C0DESK", "route set"),
        ("route list", "route list"),
        ("route clear smax", "route clear"),
    ],
)
def test_each_newsroom_subcommand_parses_to_its_table_name(text: str, name: str) -> None:
    parsed = parse_newsroom(text, ["smax"])
    assert parsed is not None and parsed.name == name and name in classify_news.SUBCOMMANDS


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("", "train"),
        ("epochs=1 force", "train"),
        ("status", "status"),
        ("rollback", "rollback"),
        ("cancel", "cancel"),
    ],
)
def test_each_retrain_form_parses_to_its_table_name(text: str, name: str) -> None:
    assert name == parse_retrain(text).SUBCOMMAND and name in retrain.SUBCOMMANDS


def test_every_subcommand_is_in_its_usage_text_and_the_home_help() -> None:
    usages = {CLASSIFY_NEWS: newsroom_usage(), RETRAIN: retrain_usage()}
    for response_type in ("in_channel", "ephemeral"):
        help_text = home_help(response_type)
        for cmd in COMMANDS:
            for sub in cmd.subcommands:
                shown = f"`{cmd.name} {sub.syntax}`"
                assert shown in usages[cmd.name], shown
                assert shown in help_text, shown
    plain = command(CLASSIFY_NEWS)
    assert f"`{CLASSIFY_NEWS} {plain.argument_ja}`" in classify_usage()
    assert f"`{CLASSIFY_NEWS} {plain.argument_en}`" in classify_usage()


def test_the_refusals_carry_the_generated_usage() -> None:
    with pytest.raises(InvalidRetrainOptionsError) as bad_option:
        parse_retrain("epochs=0")
    assert bad_option.value.user_message.endswith(retrain_usage())
    assert "`/retrain cancel`" in bad_option.value.user_message
    with pytest.raises(RouteRefusedError) as incomplete:
        parse_newsroom("route smax")
    assert incomplete.value.user_message.endswith(newsroom_usage())
