"""The newsroom workflow's pure parts: subcommand parsing, which messages count as articles, the emoji setting,
and the listeners called directly (Slack's side mocked, the job submitter real on the test's Redis)."""

from __future__ import annotations

from typing import Any, TypedDict
from unittest.mock import Mock

import pytest
import redis
from rq import Queue
from slack_bolt import Ack, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from bot.admins import AdminPolicy
from bot.listeners.commands.classify_news import handle_classify_news
from bot.listeners.events import handle_app_mention
from bot.listeners.messages import handle_message, is_new_post, watched_article
from bot.listeners.shortcuts import handle_classify_message
from bot.newsroom import RouteCommand, WatchCommand, channel_id, parse_newsroom
from bot.submit import JobSubmitter
from common.exceptions import RouteRefusedError, SettingsError
from common.settings import DEFAULT_CATEGORY_EMOJI, Settings, load_settings
from store import newsroom
from store.newsroom import Watch
from store.queues import SERIALIZER
from testkit.samples import SAMPLES
from ui.texts import DM_USAGE, NOTHING_TO_CLASSIFY

ADMIN = "UADMIN"
LONG = "".join(SAMPLES["sports-watch"]) * 3


class Shared(TypedDict):
    """What bot.context puts in Bolt's context, passed to a listener by keyword as Bolt does."""

    submitter: JobSubmitter
    settings: Settings
    admins: AdminPolicy


def dependencies(conn: redis.Redis) -> Shared:
    config = Settings(slack_bot_token="xoxb-test", admin_user_ids=[ADMIN])  # type: ignore[call-arg]
    return Shared(submitter=JobSubmitter(conn), settings=config, admins=AdminPolicy(config))


def queued(conn: redis.Redis) -> list[dict[str, Any]]:
    return [job.args[0] for job in Queue("classify", connection=conn, serializer=SERIALIZER).jobs]


# --- parsing ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("watch", WatchCommand("on")),
        ("unwatch", WatchCommand("off")),
        ("watching", WatchCommand("list")),
        ("route list", RouteCommand("list")),
        ("route clear smax", RouteCommand("clear", label="smax")),
        ("route clear an-old-label", RouteCommand("clear", label="an-old-label")),
        ("route smax <#C0DESK|desk>", RouteCommand("set", label="smax", desk="C0DESK")),
        ("route smax <#G0PRIV>", RouteCommand("set", label="smax", desk="G0PRIV")),
        ("route smax C0DESK", RouteCommand("set", label="smax", desk="C0DESK")),
        # Article text that happens to start with a keyword is still an article.
        ("watch this: 日本代表が勝利した", None),
        ("route 66 reopened after the storm damage was repaired", None),
        ("日本代表が勝利した", None),
        ("", None),
    ],
)
def test_subcommands_are_told_apart_from_articles(text: str, parsed: object) -> None:
    assert parse_newsroom(text) == parsed


@pytest.mark.parametrize(
    ("text", "reason"),
    [("route", "not complete"), ("route nolabel C0DESK", "no label `nolabel`"), ("route smax #desk", "not a channel")],
)
def test_malformed_route_commands_say_why(text: str, reason: str) -> None:
    with pytest.raises(RouteRefusedError) as refused:
        parse_newsroom(text)
    assert reason in refused.value.user_message


def test_a_channel_is_read_from_slack_markup_or_its_id() -> None:
    assert channel_id("<#C123ABC|news-desk>") == "C123ABC"
    with pytest.raises(RouteRefusedError):
        channel_id("<@U123>")


# --- which messages are articles ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "article"),
    [
        ("<https://news.example.jp/a/1>", True),
        ("これ読んで https://news.example.jp/a/1", True),
        (LONG, True),
        (LONG[:150], False),  # short text without a link
        (":tada: " * 60, False),  # emoji only, however long
        ("```\n" + "x = compute(1)\n" * 30 + "```", False),  # a code block only
        ("`https://example.com/in-code`", False),  # a link inside code is not shared
        ("<@U1> <@U2> <#C1|general> " * 20, False),  # mentions only
    ],
)
def test_a_watched_message_is_an_article_with_a_link_or_200_characters(text: str, article: bool) -> None:
    assert (watched_article({"text": text}) is not None) is article


@pytest.mark.parametrize(
    ("event", "new"),
    [
        ({"user": "U1", "ts": "1.1"}, True),
        ({"user": "U1", "ts": "1.1", "thread_ts": "1.1"}, True),  # a thread's first message
        ({"user": "U1", "ts": "1.2", "thread_ts": "1.1"}, False),  # a reply
        ({"user": "U1", "ts": "1.1", "subtype": "message_changed"}, False),
        ({"user": "U1", "ts": "1.1", "subtype": "thread_broadcast", "thread_ts": "1.0"}, False),
        ({"user": "U1", "ts": "1.1", "bot_id": "B1"}, False),
        ({"user": "UBOT", "ts": "1.1"}, False),
        ({"ts": "1.1", "subtype": "message_deleted"}, False),
    ],
)
def test_only_a_persons_new_top_level_message_is_looked_at(event: dict[str, Any], new: bool) -> None:
    assert is_new_post(event, "UBOT") is new


# --- settings -----------------------------------------------------------------------------------------------
def test_category_emoji_override_the_defaults_and_have_a_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATEGORY_EMOJI", "sports-watch=:runner:, *=bookmark")
    settings = load_settings()
    assert settings.emoji_for("sports-watch") == "runner"
    assert settings.emoji_for("smax") == DEFAULT_CATEGORY_EMOJI["smax"]
    assert settings.emoji_for("a-label-of-a-new-model") == "bookmark"
    monkeypatch.delenv("CATEGORY_EMOJI")
    assert load_settings().emoji_for("anything-else") == DEFAULT_CATEGORY_EMOJI["*"]
    monkeypatch.setenv("CATEGORY_EMOJI", "sports-watch")
    with pytest.raises(SettingsError, match="CATEGORY_EMOJI"):
        load_settings()
    monkeypatch.setenv("CATEGORY_EMOJI", "")
    monkeypatch.setenv("WATCH_REPLY", "everything")
    with pytest.raises(SettingsError, match="WATCH_REPLY"):
        load_settings()


# --- listeners ----------------------------------------------------------------------------------------------
def body_of(event: dict[str, Any], event_id: str = "Ev1") -> dict[str, Any]:
    return {"type": "event_callback", "event_id": event_id, "event": event}


def test_only_watched_channels_articles_and_dms_are_enqueued_each_message_once(redis_conn: redis.Redis) -> None:
    submitter, say = JobSubmitter(redis_conn), Mock(name="say")
    article = {"type": "message", "channel": "CW", "channel_type": "channel", "user": "U1", "text": LONG, "ts": "1.1"}
    handle_message(event=article, body=body_of(article), submitter=submitter, say=say, bot_user_id="UBOT")
    assert queued(redis_conn) == []  # not watched
    newsroom.put_watch(redis_conn, Watch(channel="CW", by=ADMIN, at=0.0))
    for event_id in ("Ev1", "Ev1", "Ev1-redelivered-as-another-event"):
        handle_message(event=article, body=body_of(article, event_id), submitter=submitter, say=say, bot_user_id="UBOT")
    ((payload),) = queued(redis_conn)
    assert (payload["source"], payload["channel"], payload["thread_ts"]) == ("watch", "CW", "1.1")
    mention = {**article, "ts": "1.2", "text": f"<@UBOT> {LONG}"}
    handle_message(event=mention, body=body_of(mention, "Ev2"), submitter=submitter, say=say, bot_user_id="UBOT")
    assert len(queued(redis_conn)) == 1  # left to app_mention

    dm = {
        "type": "message",
        "channel": "D1",
        "channel_type": "im",
        "user": "U1",
        "text": "新型スマホの記事",
        "ts": "2.1",
    }
    handle_message(event=dm, body=body_of(dm, "Ev3"), submitter=submitter, say=say, bot_user_id="UBOT")
    assert queued(redis_conn)[-1]["source"] == "dm" and queued(redis_conn)[-1]["thread_ts"] is None
    empty_dm = {**dm, "text": "👍", "ts": "2.2"}
    for _ in range(2):
        handle_message(event=empty_dm, body=body_of(empty_dm, "Ev4"), submitter=submitter, say=say, bot_user_id="UBOT")
    say.assert_called_once_with(text=DM_USAGE)
    assert len(queued(redis_conn)) == 2


def test_an_empty_mention_in_a_thread_enqueues_its_parent_instead_of_the_usage_line(redis_conn: redis.Redis) -> None:
    say = Mock(name="say")
    event = {"type": "app_mention", "user": "U1", "channel": "C1", "ts": "5.2", "thread_ts": "5.1", "text": "<@UBOT>"}
    handle_app_mention(event=event, body=body_of(event), submitter=JobSubmitter(redis_conn), say=say)
    say.assert_not_called()
    ((payload),) = queued(redis_conn)
    assert (payload["source"], payload["thread_ts"], payload["text"]) == ("thread", "5.1", "")


def test_watch_and_route_commands_are_checked_before_anything_is_stored(redis_conn: redis.Redis) -> None:
    client = Mock(WebClient)
    cmd = {"command": "/classify-news", "user_id": "UNOBODY", "channel_id": "CW", "trigger_id": "t1"}
    for text in ("watch", "route smax <#C0DESK|desk>"):
        ack = Mock(Ack)
        handle_classify_news(
            ack=ack, command={**cmd, "text": text}, **dependencies(redis_conn), respond=Mock(Respond), client=client
        )
        assert "only newsbot admins" in ack.call_args.kwargs["text"]
    assert newsroom.watches(redis_conn) == [] and queued(redis_conn) == []
    ack = Mock(Ack)
    admin = {**cmd, "user_id": ADMIN, "text": "route smax <#C0DESK|desk>", "response_url": "https://x"}
    handle_classify_news(ack=ack, command=admin, **dependencies(redis_conn), respond=Mock(Respond), client=client)
    assert "Checking <#C0DESK>" in ack.call_args.kwargs["text"]
    ((payload),) = [job.args[0] for job in Queue("classify", connection=redis_conn, serializer=SERIALIZER).jobs]
    assert (payload["label"], payload["desk"], payload["user"]) == ("smax", "C0DESK", ADMIN)


def test_the_shortcut_where_the_bot_is_not_answers_through_its_response_url(redis_conn: redis.Redis) -> None:
    client, respond = Mock(WebClient), Mock(Respond)
    refused = SlackResponse(
        client=None, http_verb="POST", api_url="", req_args={}, data={"ok": False, "error": "not_in_channel"},
        headers={}, status_code=200,
    )  # fmt: skip
    client.chat_postEphemeral.side_effect = SlackApiError("not_in_channel", refused)
    shortcut = {
        "trigger_id": "t9",
        "user": {"id": "U1"},
        "channel": {"id": "CX"},
        "message": {"ts": "9.1", "text": "🎉"},
        "response_url": "https://hooks.slack.test/actions/1",
    }
    handle_classify_message(
        ack=Mock(Ack), shortcut=shortcut, submitter=JobSubmitter(redis_conn), client=client, respond=respond
    )
    (note,) = respond.call_args_list
    assert NOTHING_TO_CLASSIFY in note.kwargs["text"] and "/invite @newsbot" in note.kwargs["text"]
    assert note.kwargs["response_type"] == "ephemeral"
    article = {**shortcut, "trigger_id": "t10", "message": {"ts": "9.2", "text": "新型スマートフォンの記事です。"}}
    handle_classify_message(
        ack=Mock(Ack), shortcut=article, submitter=JobSubmitter(redis_conn), client=client, respond=respond
    )
    ((payload),) = queued(redis_conn)
    assert payload["fallback_url"] == "https://hooks.slack.test/actions/1"


@pytest.mark.parametrize(
    "text",
    [
        "watch",
        "unwatch",
        "watching",
        "route list",
        "route clear sports",
        "route sports <#C0DESK|desk>",
        "route sports <#C0DESK|desk> allow-wider",
        "route sports <#C0DESK|desk> please",
        "route sports",
        "watch this story",
        "日本代表が勝利した",
        "route",
    ],
)
def test_the_admin_check_sees_the_same_subcommands_the_parser_does(text: str) -> None:
    """The bot checks the user is an admin for whatever :func:`is_newsroom` calls a subcommand, before parsing: a
    form the parser takes but the check does not (``allow-wider`` was one) would be classified as an article."""
    from bot.newsroom import is_newsroom

    try:
        parsed = parse_newsroom(text, ["sports"]) is not None
    except RouteRefusedError:
        parsed = True  # a subcommand, malformed: refused, never classified
    assert is_newsroom(text) == parsed, text
