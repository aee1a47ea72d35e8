"""Issue 17, items 2 (a member's rate limit) and 5 (the admin check comes first): the listeners called directly,
Slack's side mocked, the job submitter real on the test's Redis."""

from __future__ import annotations

from typing import Any
from unittest.mock import Mock

import pytest
import redis
from rq import Queue
from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.admins import AdminPolicy
from bot.listeners.commands.classify_news import handle_classify_news
from bot.listeners.events import handle_app_mention
from bot.listeners.messages import handle_message
from bot.listeners.shortcuts import handle_classify_message
from bot.submit import JobSubmitter
from common.exceptions import NotAdminError
from common.settings import Settings
from store import limits, newsroom
from store.limits import MEMBER_RATE_WINDOW_S, MemberRate
from store.queues import SERIALIZER
from testkit.samples import SAMPLES
from ui.texts import member_rate_limited

ADMIN = "UADMIN"
ARTICLE = "".join(SAMPLES["sports-watch"])
LIMIT = int(Settings.model_fields["member_rate_per_minute"].default)


def queued(conn: redis.Redis) -> list[dict[str, Any]]:
    return [job.args[0] for job in Queue("classify", connection=conn, serializer=SERIALIZER).jobs]


def mention(user: str, n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    event = {"type": "app_mention", "user": user, "channel": "C1", "ts": f"{n}.1", "text": f"<@UBOT> {ARTICLE}"}
    return event, {"type": "event_callback", "event_id": f"Ev{user}{n}", "event": event}


def command(user: str, text: str, n: int = 0) -> dict[str, Any]:
    return {
        "command": "/classify-news",
        "user_id": user,
        "channel_id": "CW",
        "trigger_id": f"t{user}{n}",
        "text": text,
        "response_url": "https://hooks.slack.test/commands/1",
    }


def run_command(conn: redis.Redis, cmd: dict[str, Any], client: WebClient | None = None) -> str:
    config = Settings(slack_bot_token="xoxb-test", admin_user_ids=[ADMIN])  # type: ignore[call-arg]
    ack = Mock(Ack)
    handle_classify_news(
        ack=ack,
        command=cmd,
        submitter=JobSubmitter(conn),
        settings=config,
        admins=AdminPolicy(config),
        respond=Mock(Respond),
        client=client or Mock(WebClient),
    )
    (call,) = ack.call_args_list
    return str(call.kwargs["text"])


# --- item 5: admin subcommands answer a non-admin with the admins-only line and nothing else ----------------------
@pytest.mark.parametrize(
    "text",
    [
        "route nolabel C0DESK",  # an unknown label: used to list the model's labels back
        "route <!channel> <#C0DESK|desk>",  # used to echo the text back
        "route smax #desk",  # not a channel: used to echo it
        "route",  # incomplete: used to show the usage
        "route clear smax",
        "route list",
        "watch",
    ],
)
def test_a_non_admin_gets_the_admins_only_line_and_nothing_else(redis_conn: redis.Redis, text: str) -> None:
    client = Mock(WebClient)
    assert run_command(redis_conn, command("UNOBODY", text), client) == NotAdminError.user_message
    assert queued(redis_conn) == [] and newsroom.watches(redis_conn) == []
    # and an admin still gets the parse's answer
    answer = run_command(redis_conn, command(ADMIN, text, 1), client)
    assert answer != NotAdminError.user_message


def test_an_admin_is_still_told_why_a_route_is_malformed(redis_conn: redis.Redis) -> None:
    assert "no label `nolabel`" in run_command(redis_conn, command(ADMIN, "route nolabel C0DESK"))


# --- item 2: a member's rate limit ---------------------------------------------------------------------------------
def test_100_mentions_from_one_member_enqueue_the_limit_and_one_polite_note(redis_conn: redis.Redis) -> None:
    submitter, say = JobSubmitter(redis_conn), Mock(name="say")
    for n in range(100):
        event, body = mention("UFLOOD", n)
        handle_app_mention(event=event, body=body, submitter=submitter, say=say)
    assert len(queued(redis_conn)) == LIMIT
    (note,) = say.call_args_list
    assert note.kwargs["text"] == member_rate_limited(LIMIT)
    assert "1分間" in note.kwargs["text"] and "a minute" in note.kwargs["text"]
    # another member is not affected
    event, body = mention("UOTHER", 0)
    handle_app_mention(event=event, body=body, submitter=submitter, say=say)
    assert len(queued(redis_conn)) == LIMIT + 1 and queued(redis_conn)[-1]["user"] == "UOTHER"
    assert say.call_count == 1
    # the window ends with its key
    rate = limits.member_rate(redis_conn, "UFLOOD")
    assert rate is not None and rate.count == 100
    assert 0 < redis_conn.ttl(MemberRate.key_for("UFLOOD")) <= MEMBER_RATE_WINDOW_S


def test_dms_commands_and_shortcuts_share_the_members_limit(redis_conn: redis.Redis) -> None:
    submitter, say = JobSubmitter(redis_conn), Mock(name="say")
    for n in range(LIMIT + 5):
        dm = {"type": "message", "channel": "D1", "channel_type": "im", "user": "UDM", "text": ARTICLE, "ts": f"{n}.1"}
        body = {"type": "event_callback", "event_id": f"EvDM{n}", "event": dm}
        handle_message(event=dm, body=body, submitter=submitter, say=say, bot_user_id="UBOT")
    assert len(queued(redis_conn)) == LIMIT
    say.assert_called_once_with(text=member_rate_limited(LIMIT))
    # the same member's command is refused too, with the note (the ack Slack needs), nothing enqueued
    assert run_command(redis_conn, command("UDM", ARTICLE)) == member_rate_limited(LIMIT)
    client = Mock(WebClient)
    shortcut = {
        "trigger_id": "ts1",
        "user": {"id": "UDM"},
        "channel": {"id": "CX"},
        "message": {"ts": "9.1", "text": ARTICLE},
    }
    handle_classify_message(ack=Mock(Ack), shortcut=shortcut, submitter=submitter, client=client)
    client.chat_postEphemeral.assert_not_called()  # told once already
    assert len(queued(redis_conn)) == LIMIT
    # admin subcommands are not counted: an admin over the limit can still manage routes
    for n in range(LIMIT + 1):
        event, body = mention(ADMIN, n)
        handle_app_mention(event=event, body=body, submitter=submitter, say=say)
    assert "転送先" in run_command(redis_conn, command(ADMIN, "route list"))


def test_a_limit_of_zero_turns_it_off(redis_conn: redis.Redis) -> None:
    submitter, say = JobSubmitter(redis_conn, member_rate_per_minute=0), Mock(name="say")
    for n in range(LIMIT + 3):
        event, body = mention("UFLOOD", n)
        handle_app_mention(event=event, body=body, submitter=submitter, say=say)
    assert len(queued(redis_conn)) == LIMIT + 3
    say.assert_not_called()


def test_the_rate_record_round_trips_with_its_ttl(redis_conn: redis.Redis) -> None:
    assert limits.member_rate(redis_conn, "U1") is None
    assert limits.count_request(redis_conn, "U1") == MemberRate("U1", 1)
    assert limits.count_request(redis_conn, "U1") == MemberRate("U1", 2)
    assert limits.member_rate(redis_conn, "U1") == MemberRate("U1", 2)
    assert MemberRate.key_for("U1") == "newsbot:rate:U1"
    assert 0 < redis_conn.ttl(MemberRate.key_for("U1")) <= MEMBER_RATE_WINDOW_S
