"""Embargoed stories and channel lifecycle, in process: the worker's desk and lifecycle functions and the bot's
listeners, against the fake Slack (its channels private, externally shared or archived as conversations.info says)
and the test's Redis.

A cross-post is made only when the desk's audience is no wider than the article's channel's, checked when the post
is made; an admin may opt a route in (``allow-wider``). Watches and routes follow their channels: archived,
deleted, the bot removed, shared or unshared.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest.mock import Mock

import pytest
import redis
from rq import Queue
from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.admins import AdminPolicy
from bot.listeners.channels import handle_channel_event
from bot.listeners.commands.classify_news import handle_classify_news
from bot.listeners.messages import handle_message
from bot.newsroom import RouteCommand, parse_newsroom
from bot.submit import JobSubmitter
from common.articles import Article
from common.audience import Audience
from common.jobs import ChannelEvent, ClassifyRequest, RouteRequest
from common.settings import Settings
from newsmodel.prediction import Prediction
from store import newsroom
from store.newsroom import ChannelFacts, Route, Watch
from store.queues import SERIALIZER
from testkit.fake_slack import Call, FakeSlack
from testkit.inprocess_worker import worker_settings
from ui.newsroom import route_list
from worker import jobs, lifecycle, routes
from worker.classifier import ModelService
from worker.desks import allows, route_articles
from worker.pipeline import ArticleResult
from worker.slack import SlackReplier, web_client

ADMIN = "UADMIN"
SOURCE = "CSOURCE"  # the watched channel
DESK = "CDESK"
EMBARGOED = "【解禁前・社外秘】新型スマートフォンの発表は来週月曜の午前10時まで報道を控えてください"


@dataclass
class Side:
    """What worker.desks and worker.lifecycle use of the worker's runtime."""

    settings: Settings
    connection: redis.Redis
    replier: SlackReplier


@pytest.fixture
def side(fake_slack: FakeSlack, redis_conn: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Side:
    settings = worker_settings("redis://unused", fake_slack.api_url, tmp_path / "models", confidence_threshold=0.0)
    replier = SlackReplier(web_client(settings))
    runtime = jobs.Runtime(settings, redis_conn, ModelService(settings.model_dir, None), replier)
    monkeypatch.setattr(jobs, "_runtime", runtime)  # worker.routes.set_route's runtime(); restored afterwards
    return Side(settings, redis_conn, replier)


def article(title: str = EMBARGOED, n: int = 1) -> ArticleResult:
    return ArticleResult(
        url=None,
        article=Article(title=title, body=title * 5),
        prediction=Prediction(scores={"smax": 0.9, "peachy": 0.1}),
        model_version="20260101-000000-tiny0001",
        record_id=f"watch-{n}:1",
    )


def watched(n: int, channel: str = SOURCE) -> ClassifyRequest:
    return ClassifyRequest(
        request_id=f"Ev{n}", text=EMBARGOED, channel=channel, thread_ts=f"1700.{n:06d}", source="watch"
    )


def route(desk: str = DESK, *, allow_wider: str = "") -> Route:
    return Route(label="smax", channel=desk, by=ADMIN, at=time.time(), allow_wider=allow_wider)


def post(side: Side, n: int, channel: str = SOURCE) -> tuple[list[str], list[str]]:
    return route_articles(side, f"job-{n}", watched(n, channel), [article(n=n)])


def posts_in(fake: FakeSlack, channel: str) -> list[Call]:
    return [c for c in fake.calls_to("chat.postMessage") if c.params.get("channel") == channel and c.delivered]


def set_route(fake: FakeSlack, label: str, desk: str, allow_wider: bool = False, name: str = "route") -> str:
    request = RouteRequest(
        request_id=name,
        user=ADMIN,
        channel=SOURCE,
        label=label,
        desk=desk,
        response_url=fake.response_url(name),
        allow_wider=allow_wider,
    )
    routes.set_route(request.to_dict())
    return str(fake.responses(name)[-1]["text"])


def queued(conn: redis.Redis) -> list[dict[str, Any]]:
    return [job.args[0] for job in Queue("classify", connection=conn, serializer=SERIALIZER).jobs]


# --- the rule -----------------------------------------------------------------------------------------------------
def test_audiences_are_read_from_conversations_info_and_ordered() -> None:
    private = Audience.of({"is_private": True})
    internal = Audience.of({"is_private": False, "is_ext_shared": False})
    shared = Audience.of({"is_ext_shared": True})
    private_shared = Audience.of({"is_private": True, "is_pending_ext_shared": True})
    assert [a.key for a in (private, internal, shared, private_shared)] == [
        "private",
        "internal",
        "shared",
        "private-shared",
    ]
    assert Audience.of({"is_group": True}) == private  # a legacy private channel
    # private < internal < shared; a private shared channel is wider than a private one, and the internal one is
    # wider than it (the whole workspace reads it): both ways held.
    assert internal.wider_than(private) and shared.wider_than(internal) and shared.wider_than(private)
    assert not private.wider_than(internal) and not internal.wider_than(shared) and not private.wider_than(private)
    assert private_shared.wider_than(private) and internal.wider_than(private_shared)
    assert private_shared.wider_than(internal) and not private_shared.wider_than(shared)
    assert all(Audience.from_key(a.key) == a for a in (private, internal, shared, private_shared))
    # An opt-in covers the desk's audience it was given for, not a wider one.
    assert allows(route(allow_wider="internal"), private, internal)
    assert not allows(route(allow_wider="internal"), private, shared)
    assert not allows(route(), private, internal) and allows(route(), internal, private)


# --- embargoed stories --------------------------------------------------------------------------------------------
def test_a_private_channels_article_is_held_from_a_public_desk_until_an_admin_opts_the_route_in(
    side: Side, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    fake_slack.add_channel(SOURCE, private=True)
    fake_slack.add_channel(DESK)
    answer = set_route(fake_slack, "smax", DESK)
    assert "narrower audience" in answer and "公開範囲の狭い" in answer

    for n in (1, 2, 3):
        posted, notes = post(side, n)
        assert posted == [] and len(notes) == 1
        assert "wider audience than this channel" in notes[0] and "公開範囲が広い" in notes[0]
        assert DESK not in notes[0]  # the thread does not name the desk
    assert posts_in(fake_slack, DESK) == []
    (told,) = posts_in(fake_slack, ADMIN)  # once, however many articles were held
    text = told.params["text"]
    assert "held back" in text and "転送しませんでした" in text and "allow-wider" in text
    assert f"<#{SOURCE}>" in text and "a private channel" in text and "a public channel" in text
    assert EMBARGOED not in text

    opted = set_route(fake_slack, "smax", DESK, allow_wider=True, name="opt-in")
    assert "allow-wider" in opted and "embargoed stories included" in opted and "解禁前・社外秘" in opted
    stored = newsroom.route_of(redis_conn, "smax")
    assert stored is not None and stored.allow_wider == "internal"
    posted, notes = post(side, 4)
    assert posted == [DESK] and notes == []
    (desk_post,) = posts_in(fake_slack, DESK)
    assert EMBARGOED in desk_post.params["text"]


def test_an_internal_article_is_held_from_an_externally_shared_desk_and_narrower_desks_get_it(
    side: Side, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    fake_slack.add_channel(SOURCE)
    fake_slack.add_channel("CCONNECT", ext_shared=True)
    fake_slack.add_channel("CPRIVDESK", private=True)
    assert "another organisation" in set_route(fake_slack, "smax", "CCONNECT")
    posted, notes = post(side, 1)
    assert posted == [] and len(notes) == 1
    assert posts_in(fake_slack, "CCONNECT") == []
    (told,) = posts_in(fake_slack, ADMIN)
    assert "Slack Connect" in told.params["text"]

    # A private desk is narrower than the public source: posted without any opt-in.
    set_route(fake_slack, "smax", "CPRIVDESK", name="private-desk")
    posted, notes = post(side, 2)
    assert posted == ["CPRIVDESK"] and notes == []


def test_the_audience_is_checked_when_the_post_is_made_not_only_when_the_route_was_set(
    side: Side, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    fake_slack.add_channel(SOURCE)
    fake_slack.add_channel(DESK)
    set_route(fake_slack, "smax", DESK)
    fake_slack.update_channel(DESK, is_ext_shared=True)  # shared with another organisation after the route was set
    posted, notes = post(side, 1)
    assert posted == [] and len(notes) == 1
    assert posts_in(fake_slack, DESK) == []


def test_the_kept_audience_is_forgotten_when_a_desk_is_shared_and_its_admin_is_told(
    side: Side, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    fake_slack.add_channel(SOURCE)
    fake_slack.add_channel(DESK)
    set_route(fake_slack, "smax", DESK, allow_wider=True)  # opted in for an internal desk
    assert post(side, 1)[0] == [DESK]
    facts = newsroom.cached_facts(redis_conn, DESK)
    assert facts is not None and not facts.external
    assert 0 < (redis_conn.ttl(ChannelFacts.key_for(DESK)) or 0) <= 60

    fake_slack.update_channel(DESK, is_ext_shared=True)
    lifecycle.follow(side, ChannelEvent(request_id="Ev9", channel=DESK, change="audience", event="channel_shared"))
    (told,) = posts_in(fake_slack, ADMIN)
    assert "now a channel shared with another organisation" in told.params["text"]
    assert "does not cover this audience" in told.params["text"]
    posted, notes = post(side, 2)
    assert posted == [] and len(notes) == 1  # the opt-in was for an internal desk, not a shared one
    assert len(posts_in(fake_slack, DESK)) == 1


def test_an_article_is_held_when_slack_will_not_say_who_reads_its_channel(
    side: Side, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    fake_slack.add_channel(DESK)
    newsroom.put_route(redis_conn, route())
    for n in (1, 2):
        posted, notes = post(side, n, channel="CUNKNOWN")  # conversations.info: channel_not_found
        assert posted == [] and len(notes) == 1
    (told,) = posts_in(fake_slack, ADMIN)
    assert "would not tell me who can read" in told.params["text"]


def test_a_desk_found_archived_when_posting_pauses_its_route_and_tells_its_admin(
    side: Side, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    fake_slack.add_channel(SOURCE)
    fake_slack.add_channel(DESK)
    set_route(fake_slack, "smax", DESK)
    fake_slack.update_channel(DESK, is_archived=True)
    for n in (1, 2):
        assert post(side, n) == ([], [])
    stored = newsroom.route_of(redis_conn, "smax")
    assert stored is not None and stored.paused == "archived"
    (told,) = posts_in(fake_slack, ADMIN)
    assert "was archived" in told.params["text"] and "paused" in told.params["text"]
    assert "not in that channel" not in told.params["text"]
    assert fake_slack.calls_to("chat.postMessage")[0].params["channel"] == ADMIN  # no post was tried in the desk


# --- channel lifecycle ----------------------------------------------------------------------------------------------
def event(change: str, channel: str, kind: str) -> ChannelEvent:
    return ChannelEvent(request_id=f"Ev-{kind}", channel=channel, change=change, event=kind)  # type: ignore[arg-type]


@pytest.mark.parametrize("change", ["archived", "removed"])
def test_an_archived_or_left_channel_loses_its_watch_and_pauses_its_routes(
    side: Side, fake_slack: FakeSlack, redis_conn: redis.Redis, change: str
) -> None:
    fake_slack.add_channel(DESK)
    newsroom.put_watch(redis_conn, Watch(channel=DESK, by="UWATCHER", at=0.0))
    newsroom.put_route(redis_conn, route())
    done = lifecycle.follow(side, event(change, DESK, "x"))
    assert done["watch"] == "removed" and done["routes"] == {"smax": "paused"}
    assert newsroom.watch_of(redis_conn, DESK) is None  # a re-invited bot does not resume watching
    stored = newsroom.route_of(redis_conn, "smax")
    assert stored is not None and stored.paused == change
    (watch_note,) = posts_in(fake_slack, "UWATCHER")
    assert "stopped watching" in watch_note.params["text"] and "/classify-news watch" in watch_note.params["text"]
    (route_note,) = posts_in(fake_slack, ADMIN)
    assert "paused the `smax` route" in route_note.params["text"] and "一時停止" in route_note.params["text"]
    # A paused route cross-posts nothing, and is listed as paused; setting it again resumes it.
    fake_slack.add_channel(SOURCE)
    assert post(side, 1) == ([], [])
    assert "paused (" in route_list(newsroom.routes(redis_conn)) and "停止中" in route_list(newsroom.routes(redis_conn))
    lifecycle.follow(side, event(change, DESK, "again"))  # a redelivered event tells no one twice
    assert len(posts_in(fake_slack, ADMIN)) == 1
    set_route(fake_slack, "smax", DESK)
    assert post(side, 2)[0] == [DESK]


def test_a_deleted_desk_loses_its_routes_and_their_admins_are_told(
    side: Side, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    newsroom.put_route(redis_conn, route())
    newsroom.put_route(redis_conn, Route(label="peachy", channel=DESK, by="UOTHER", at=0.0))
    newsroom.put_route(redis_conn, Route(label="movie-enter", channel="CELSE", by=ADMIN, at=0.0))
    done = lifecycle.follow(side, event("deleted", DESK, "channel_deleted"))
    assert done["routes"] == {"smax": "removed", "peachy": "removed"}
    assert [r.label for r in newsroom.routes(redis_conn)] == ["movie-enter"]
    for admin, label in ((ADMIN, "smax"), ("UOTHER", "peachy")):
        (note,) = posts_in(fake_slack, admin)
        assert f"removed the `{label}` route" in note.params["text"] and "削除しました" in note.params["text"]


def test_a_watched_channel_made_private_or_shared_tells_its_admin_what_it_means(
    side: Side, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    fake_slack.add_channel(SOURCE)
    newsroom.put_watch(redis_conn, Watch(channel=SOURCE, by=ADMIN, at=0.0))
    newsroom.put_facts(redis_conn, ChannelFacts(channel=SOURCE, private=False, external=False))
    fake_slack.update_channel(SOURCE, is_private=True)
    lifecycle.follow(side, event("audience", SOURCE, "channel_convert_to_private"))
    facts = newsroom.cached_facts(redis_conn, SOURCE)
    assert facts is not None and facts.private  # asked again, not the minute-old answer
    (note,) = posts_in(fake_slack, ADMIN)
    assert "now a private channel" in note.params["text"] and "allow-wider" in note.params["text"]
    assert newsroom.watch_of(redis_conn, SOURCE) is not None  # still watched


def test_lifecycle_events_are_enqueued_only_for_channels_the_newsroom_uses(redis_conn: redis.Redis) -> None:
    submitter = JobSubmitter(redis_conn)

    def deliver(evt: dict[str, Any], event_id: str) -> None:
        body = {"type": "event_callback", "event_id": event_id, "event": evt}
        handle_channel_event(event=evt, body=body, submitter=submitter, bot_user_id="UBOT")

    deliver({"type": "channel_archive", "channel": "CNOBODY", "user": "U1"}, "Ev1")
    assert queued(redis_conn) == []
    newsroom.put_watch(redis_conn, Watch(channel="CW", by=ADMIN, at=0.0))
    newsroom.put_route(redis_conn, route("CD"))
    deliver({"type": "member_left_channel", "channel": "CW", "user": "USOMEONE"}, "Ev2")
    assert queued(redis_conn) == []  # someone else left
    deliver({"type": "member_left_channel", "channel": "CW", "user": "UBOT"}, "Ev3")
    deliver({"type": "group_left", "channel": "CW"}, "Ev4")
    deliver({"type": "channel_deleted", "channel": "CD"}, "Ev5")
    deliver({"type": "channel_deleted", "channel": "CD"}, "Ev5")  # Slack's redelivery
    deliver({"type": "channel_shared", "channel": "CD", "connected_team_id": "E1"}, "Ev6")
    made_private = {"type": "message", "subtype": "channel_convert_to_private", "channel": "CW", "user": "U1"}
    handle_message(
        event={**made_private, "ts": "1.1", "channel_type": "group"},
        body={"event_id": "Ev7", "event": made_private},
        submitter=submitter,
        say=Mock(),
        bot_user_id="UBOT",
    )
    changes = sorted((p["change"], p["channel"], p["event"]) for p in queued(redis_conn))
    assert changes == [
        ("audience", "CD", "channel_shared"),
        ("audience", "CW", "channel_convert_to_private"),
        ("deleted", "CD", "channel_deleted"),
        ("removed", "CW", "group_left"),
        ("removed", "CW", "member_left_channel"),
    ]


# --- the admin's commands -------------------------------------------------------------------------------------------
def test_allow_wider_is_parsed_only_as_the_route_commands_last_word() -> None:
    assert parse_newsroom("route smax <#C0DESK|desk> allow-wider") == RouteCommand(
        "set", label="smax", desk="C0DESK", allow_wider=True
    )
    assert parse_newsroom("route smax <#C0DESK|desk>") == RouteCommand("set", label="smax", desk="C0DESK")
    assert parse_newsroom("route 66 reopened after storms") is None  # article text
    assert parse_newsroom("route smax C0DESK allow") is None


def test_watching_a_private_channel_tells_the_admin_what_it_means_for_routes(
    fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    fake_slack.add_channel("CPRIV", private=True)
    fake_slack.add_channel("CCONNECT", ext_shared=True)
    config = Settings(slack_bot_token="xoxb-test", admin_user_ids=[ADMIN])  # type: ignore[call-arg]
    client = WebClient(token="xoxb-test", base_url=fake_slack.api_url)
    answers = {}
    for channel in ("CPRIV", "CCONNECT", "CUNKNOWN"):
        ack = Mock(Ack)
        command = {"command": "/classify-news", "text": "watch", "user_id": ADMIN, "channel_id": channel}
        handle_classify_news(
            ack=ack,
            command={**command, "trigger_id": f"t-{channel}"},
            submitter=JobSubmitter(redis_conn),
            settings=config,
            admins=AdminPolicy(config),
            respond=Mock(Respond),
            client=client,
        )
        answers[channel] = ack.call_args.kwargs["text"]
        assert newsroom.watch_of(redis_conn, channel) is not None
    assert "is a private channel" in answers["CPRIV"] and "not cross-posted to desks with a wider" in answers["CPRIV"]
    assert "allow-wider" in answers["CPRIV"] and "非公開チャンネル" in answers["CPRIV"]
    assert "shared with another organisation" in answers["CCONNECT"]
    assert "Watching <#CUNKNOWN>" in answers["CUNKNOWN"] and "allow-wider" not in answers["CUNKNOWN"]
