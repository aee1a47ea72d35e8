"""The newsroom workflow end to end: the real bot (HTTP, signed requests) and worker processes, Redis, fake Slack.

Watched channels (a category reaction, once per message), routes to desk channels (cross-posts of confident
articles, the admin told once when the bot is not in the desk), admin checks, empty mentions in threads, DMs,
and the message shortcut in a channel the bot is not in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from common.labels import SLUGS
from common.settings import DEFAULT_CATEGORY_EMOJI
from store.newsroom import route_of, routes, watch_of, watches
from testkit.fake_slack import Call, FakeSlack
from testkit.processes import Proc, launch_bot, launch_worker, product_env, seed_registry, wait_started
from testkit.redis_server import RedisServer, free_port
from testkit.samples import SAMPLES
from testkit.signing import event_body, signed_json_headers
from testkit.slack_requests import SECRET, interaction, slash_command, trigger_id

ADMIN = "UADMIN"
NEWS = "CNEWS"  # the watched channel
DESK = "CDESK"  # a desk channel the bot is in
# A watched channel's article: no link, but well over 200 characters of text.
ARTICLE = "".join(SAMPLES["sports-watch"]) * 3


@dataclass
class Newsroom:
    """The bot's events URL and the fake Slack it talks to."""

    url: str
    fake: FakeSlack

    def command(self, text: str, user: str = ADMIN, channel: str = NEWS, name: str = "cmd") -> str:
        """Run ``/classify-news text``; the ack's text (acked within 3 s)."""
        response_url = self.fake.response_url(name)
        answer = slash_command(self.url, "/classify-news", text, user=user, channel=channel, response_url=response_url)
        assert answer.status_code == 200 and answer.elapsed.total_seconds() < 3
        return str(answer.json()["text"])

    def route_everything(self, desk: str) -> list[str]:
        """Route every label to ``desk`` (whatever the tiny model predicts is routed); the worker's answers."""
        for n, slug in enumerate(SLUGS):
            assert "Checking" in self.command(f"route {slug} <#{desk}|desk>", name=f"route-{desk}-{n}")
        return [str(self.fake.wait_response(f"route-{desk}-{n}")["text"]) for n in range(len(SLUGS))]


# The two configurations the tests run the bot and worker with.
CONFIDENT = {"CONFIDENCE_THRESHOLD": "0", "WATCH_REPLY": "reaction"}  # every prediction confident, reactions only
UNSURE = {"CONFIDENCE_THRESHOLD": "1", "WATCH_REPLY": "both"}  # none sure: reactions and thread replies asked for


class Newsrooms:
    """Bot and worker processes shared by the tests that use the same configuration, one configuration at a time
    (two workers on one Redis would take each other's jobs). Each test still has its own flushed Redis and reset
    fake Slack; the processes keep nothing of a test in memory that a later one reads."""

    def __init__(self, env: dict[str, str], workdir: Path, fake: FakeSlack, redis_server: RedisServer) -> None:
        self.env, self.workdir, self.fake, self.redis = env, workdir, fake, redis_server
        self.config: dict[str, str] | None = None
        self.procs: list[Proc] = []
        self.room: Newsroom | None = None

    def open(self, config: dict[str, str]) -> Newsroom:
        if self.room is None or config != self.config:
            self.close()
            self.redis.flush()  # nothing an earlier file left queued reaches the new worker
            port = free_port()
            env = {**self.env, **config}
            self.procs = wait_started(launch_worker(env, self.workdir), launch_bot(env, port, self.workdir))
            self.config, self.room = config, Newsroom(f"http://127.0.0.1:{port}/slack/events", self.fake)
        self.fake.add_channel(NEWS)
        self.fake.add_channel(DESK)
        return self.room

    def close(self) -> None:
        for proc in self.procs:
            proc.stop()
        self.procs, self.room, self.config = [], None, None


@pytest.fixture(scope="module")
def newsrooms(
    redis_server: RedisServer, fake_slack_server: FakeSlack, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Newsrooms]:
    root = tmp_path_factory.mktemp("newsroom")
    models = root / "models"
    seed_registry(models, tiny_model, "20260101-000000-tiny0001")
    env = product_env(
        REDIS_URL=redis_server.url,
        SLACK_API_URL=fake_slack_server.api_url,
        MODEL_DIR=str(models),
        SLACK_SIGNING_SECRET=SECRET,
        ADMIN_USER_IDS=ADMIN,
        SLACK_PACE_S="0.05",
    )
    rooms = Newsrooms(env, root / "run", fake_slack_server, redis_server)
    try:
        yield rooms
    finally:
        rooms.close()


@pytest.fixture
def confident(newsrooms: Newsrooms, redis_conn: redis.Redis, fake_slack: FakeSlack) -> Newsroom:
    """Bot and worker where every prediction counts as confident (CONFIDENCE_THRESHOLD=0), reactions only."""
    return newsrooms.open(CONFIDENT)


@pytest.fixture
def unsure(newsrooms: Newsrooms, redis_conn: redis.Redis, fake_slack: FakeSlack) -> Newsroom:
    """Bot and worker where no prediction is confident (CONFIDENCE_THRESHOLD=1), reactions and thread replies."""
    return newsrooms.open(UNSURE)


# --- requests ---------------------------------------------------------------------------------------------------
def post_event(url: str, event: dict[str, Any], event_id: str, **headers: str) -> httpx.Response:
    body = event_body(event, event_id)
    answer = httpx.post(url, content=body, headers={**signed_json_headers(body, SECRET), **headers}, timeout=20)
    assert answer.status_code == 200, answer.text
    return answer


def message(ts: str, text: str = ARTICLE, channel: str = NEWS, **extra: Any) -> dict[str, Any]:
    kind = "im" if channel.startswith("D") else "channel"
    event = {"type": "message", "channel": channel, "user": "U1", "text": text, "ts": ts, "event_ts": ts}
    return {**event, "channel_type": kind, **extra}


def posts_in(fake: FakeSlack, channel: str) -> list[Call]:
    return [c for c in fake.calls_to("chat.postMessage") if c.params.get("channel") == channel]


def reactions_on(fake: FakeSlack, ts: str) -> list[str]:
    return fake.reactions.get((NEWS, ts), [])


def predicted_slug(text: str) -> str:
    (slug,) = [s for s in SLUGS if f"`{s}`" in text]
    return slug


# --- tests ------------------------------------------------------------------------------------------------------
def test_admins_set_watch_and_routes_and_others_are_refused(
    confident: Newsroom, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    room = confident
    for text in ("watch", "unwatch", "watching", f"route sports-watch <#{DESK}|desk>", "route list"):
        refusal = room.command(text, user="UNOBODY")
        assert "管理者のみ" in refusal and "only newsbot admins" in refusal
    assert watches(redis_conn) == [] and routes(redis_conn) == []
    assert redis_conn.llen("rq:queue:classify") == 0

    assert "Watching <#CNEWS>" in room.command("watch")
    assert watch_of(redis_conn, NEWS) is not None
    assert "<#CNEWS>" in room.command("watching")
    assert "cannot be watched" in room.command("watch", channel="D0DM")

    unknown_label = room.command(f"route no-such-label <#{DESK}|desk>")
    assert "no label `no-such-label`" in unknown_label and "現在のモデルにありません" in unknown_label
    assert "is not a channel" in room.command("route sports-watch #desk")
    assert "Checking" in room.command("route sports-watch <#CGONE|gone>", name="gone")
    gone = fake_slack.wait_response("gone")["text"]
    assert "cannot be a desk" in gone and "channel_not_found" in gone and "転送先にできません" in gone
    assert routes(redis_conn) == []

    answers = room.route_everything(DESK)
    assert all("will be cross-posted to <#CDESK>" in a and "not in" not in a for a in answers)
    assert {(r.label, r.channel, r.by) for r in routes(redis_conn)} == {(s, DESK, ADMIN) for s in SLUGS}
    listed = room.command("route list")
    assert all(f"`{slug}` → <#CDESK>" in listed for slug in SLUGS)
    assert "no longer cross-posted" in room.command("route clear peachy")
    assert route_of(redis_conn, "peachy") is None
    assert "Stopped watching" in room.command("unwatch")
    assert watches(redis_conn) == []


def test_a_watched_article_gets_one_reaction_and_one_desk_post_and_nothing_else_is_answered(
    confident: Newsroom, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    room, url = confident, confident.url
    room.command("watch")
    room.route_everything(DESK)

    ts = "1700000300.000100"
    post_event(url, message(ts), "EvW1")
    fake_slack.wait_for(lambda f: bool(posts_in(f, DESK)), timeout=60)
    (emoji,) = reactions_on(fake_slack, ts)
    (desk_post,) = posts_in(fake_slack, DESK)
    slug = predicted_slug(desk_post.params["text"])
    assert emoji == DEFAULT_CATEGORY_EMOJI[slug]
    assert f"https://fake.slack.test/archives/{NEWS}/p{ts.replace('.', '')}" in desk_post.params["text"]
    blocks = json.dumps(desk_post.params["blocks"])
    assert "feedback_correct" in blocks and "feedback_wrong" in blocks
    assert posts_in(fake_slack, NEWS) == []  # WATCH_REPLY=reaction: no thread reply

    # Slack redelivers the event; an edit, a deletion, a bot's post, a thread reply, a join, emoji, code and
    # a short line, a mention (left to app_mention), and a channel nobody watches: all acked, none answered.
    post_event(url, message(ts), "EvW1", **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    post_event(url, message(ts), "EvW1-other-delivery")
    edited = {**message(ts), "text": ARTICLE + "（追記）"}
    ignored = [
        message("1700000300.000101", subtype="message_changed", message=edited, previous_message=message(ts)),
        message("1700000300.000102", subtype="message_deleted", deleted_ts=ts),
        message("1700000300.000103", bot_id="BOTHER", subtype="bot_message"),
        message("1700000300.000104", bot_id="BBOT"),
        message("1700000300.000105", thread_ts=ts),
        message("1700000300.000106", subtype="channel_join", text="<@U9> has joined the channel"),
        message("1700000300.000107", text=":tada: " * 60),
        message("1700000300.000108", text="```\n" + "x = 1\n" * 60 + "```"),
        message("1700000300.000109", text="<@U2> <@U3> 了解です"),
        message("1700000300.000110", text=f"<@UBOT> {ARTICLE}"),
        message("1700000300.000111", channel="CELSEWHERE"),
    ]
    for n, event in enumerate(ignored):
        post_event(url, event, f"EvIgnored{n}")
    # A fresh article afterwards is answered: by then the ignored ones had their chance to be answered too.
    post_event(url, message("1700000300.000200"), "EvW2")
    fake_slack.wait_for(lambda f: len(posts_in(f, DESK)) == 2, timeout=60)
    assert set(fake_slack.reactions) == {(NEWS, ts), (NEWS, "1700000300.000200")}
    assert all(len(names) == 1 for names in fake_slack.reactions.values())
    assert len(fake_slack.calls_to("reactions.add")) == 2
    assert posts_in(fake_slack, NEWS) == [] and fake_slack.calls_to("chat.postEphemeral") == []

    # The bot is not in the next desk: the route is kept (with a warning), the article is not cross-posted,
    # and the admin who set it is told once, in a DM, however many articles fail.
    fake_slack.add_channel("CAWAY", member=False)
    assert all("not in <#CAWAY> yet" in a for a in room.route_everything("CAWAY"))
    for n in range(3):
        post_event(url, message(f"1700000300.00030{n}"), f"EvAway{n}")
    fake_slack.wait_for(
        lambda f: len([c for c in f.calls_to("chat.postMessage") if c.params["channel"] == "CAWAY"]) == 3
    )
    (warning,) = posts_in(fake_slack, ADMIN)
    assert (
        "/invite @newsbot" in warning.params["text"]
        and "ボットがそのチャンネルに参加していません" in warning.params["text"]
    )
    route = route_of(redis_conn, predicted_slug(warning.params["text"]))
    assert route is not None and route.warned
    assert len(posts_in(fake_slack, DESK)) == 2


def test_unsure_articles_thread_mentions_dms_and_the_shortcut_where_the_bot_is_not(
    unsure: Newsroom, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    room, url = unsure, unsure.url
    room.command("watch")
    room.route_everything(DESK)

    # Unsure: the bot acts on its own only on sure answers, so no reaction, no cross-post and no classification in
    # the thread (WATCH_REPLY=both); only the thread note saying why it was not cross-posted.
    ts = "1700000400.000100"
    post_event(url, message(ts), "EvU1")
    fake_slack.wait_for(lambda f: bool(posts_in(f, NEWS)), timeout=60)
    (reply,) = posts_in(fake_slack, NEWS)
    assert reply.params["thread_ts"] == ts
    assert "Not cross-posted to <#CDESK>" in reply.params["text"] and "転送しませんでした" in reply.params["text"]
    assert "the model is not sure of it" in reply.params["text"] and "自信がありません" not in reply.params["text"]
    assert reactions_on(fake_slack, ts) == []
    assert posts_in(fake_slack, DESK) == []

    # An empty mention inside a thread classifies the thread's first message, read by the worker.
    parent, child = "1700000400.000200", "1700000400.000201"
    fake_slack.messages[(NEWS, parent)] = {"type": "message", "user": "U2", "ts": parent, "text": SAMPLES["smax"][0]}
    mention = {"type": "app_mention", "user": "U3", "channel": NEWS, "text": "<@UBOT>", "ts": child}
    post_event(url, {**mention, "thread_ts": parent, "event_ts": child}, "EvThread1")
    fake_slack.wait_for(lambda f: len(posts_in(f, NEWS)) == 2, timeout=60)
    (read,) = fake_slack.calls_to("conversations.replies")
    assert (read.params["channel"], read.params["ts"]) == (NEWS, parent)
    thread_reply = posts_in(fake_slack, NEWS)[1]
    assert thread_reply.params["thread_ts"] == parent
    predicted_slug(thread_reply.params["text"])  # a classification, not the usage line
    # A thread whose first message the bot cannot read: told so in the thread, in both languages.
    post_event(url, {**mention, "thread_ts": "1700000400.000300", "ts": "1700000400.000301"}, "EvThread2")
    fake_slack.wait_for(lambda f: len(posts_in(f, NEWS)) == 3, timeout=60)
    assert "could not be read" in posts_in(fake_slack, NEWS)[2].params["text"]

    # A DM is classified and answered in the DM; one without an article gets the usage line, once.
    post_event(url, message("1700000400.000400", SAMPLES["movie-enter"][0], channel="D0DM"), "EvDm1")
    post_event(url, message("1700000400.000401", "👍", channel="D0DM"), "EvDm2")
    post_event(url, message("1700000400.000401", "👍", channel="D0DM"), "EvDm2", **{"X-Slack-Retry-Num": "1"})
    fake_slack.wait_for(lambda f: len(posts_in(f, "D0DM")) == 2, timeout=60)
    dm_posts = posts_in(fake_slack, "D0DM")
    usage = [c for c in dm_posts if "Send me an article" in c.params["text"]]
    answer = [c for c in dm_posts if c not in usage]
    assert len(usage) == 1 and len(answer) == 1
    assert answer[0].params.get("thread_ts") in (None, "")
    predicted_slug(answer[0].params["text"])

    # The shortcut in a channel the bot is not in: the answer comes through the shortcut's response_url.
    fake_slack.add_channel("CFOREIGN", member=False)
    for name, text in (("shortcut", SAMPLES["kaden-channel"][0]), ("shortcut-empty", "🎉")):
        payload = {
            "type": "message_action",
            "callback_id": "classify_message",
            "trigger_id": trigger_id(),
            "team": {"id": "T0001"},
            "user": {"id": "U5", "team_id": "T0001"},
            "channel": {"id": "CFOREIGN", "name": "foreign"},
            "message": {"type": "message", "user": "U6", "ts": "1700000400.000500", "text": text},
            "response_url": fake_slack.response_url(name),
            "api_app_id": "A0001",
            "token": "unused",
        }
        acked = interaction(url, payload)
        assert acked.status_code == 200 and acked.elapsed.total_seconds() < 3
    result = fake_slack.wait_response("shortcut")
    assert result["response_type"] == "ephemeral" and result["replace_original"] is False
    assert "/invite @newsbot" in result["text"]
    predicted_slug(result["text"])
    assert "no article text" in fake_slack.wait_response("shortcut-empty")["text"]
    refused = [c for c in fake_slack.calls_to("chat.postMessage") if c.params["channel"] == "CFOREIGN"]
    assert len(refused) == 1  # tried once, then answered through the response_url (no retries)


PRIVATE = "CPRIVNEWS"  # a private channel the bot was invited to
EMBARGOED = "【解禁前・社外秘】" + ARTICLE


def test_a_private_channels_embargoed_story_reaches_a_public_desk_only_once_an_admin_allows_it(
    confident: Newsroom, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    room, url = confident, confident.url
    fake_slack.add_channel(PRIVATE, private=True)
    watching = room.command("watch", channel=PRIVATE)
    assert "is a private channel" in watching and "allow-wider" in watching
    room.route_everything(DESK)  # a public desk

    # Two embargoed stories: nothing reaches the desk; each thread says why without naming the desk; the admin
    # who set the route is told once.
    for n in range(2):
        post_event(url, message(f"1700000500.00010{n}", EMBARGOED, channel=PRIVATE), f"EvPriv{n}")
    fake_slack.wait_for(lambda f: len(posts_in(f, PRIVATE)) == 2, timeout=60)
    for note in posts_in(fake_slack, PRIVATE):
        assert note.params["thread_ts"].startswith("1700000500.00010")
        assert "wider audience than this channel" in note.params["text"] and DESK not in note.params["text"]
    assert posts_in(fake_slack, DESK) == []
    (told,) = posts_in(fake_slack, ADMIN)
    assert "held back" in told.params["text"] and f"<#{PRIVATE}>" in told.params["text"]
    assert "【解禁前・社外秘】" not in told.params["text"]  # the story itself is not quoted

    # The admin opts the routes in, warned of the risk; the next story is cross-posted.
    for n, slug in enumerate(SLUGS):
        assert "Checking" in room.command(f"route {slug} <#{DESK}|desk> allow-wider", name=f"opt-{n}")
    opted = [str(fake_slack.wait_response(f"opt-{n}")["text"]) for n in range(len(SLUGS))]
    assert all("embargoed stories included" in a and "解禁前・社外秘" in a for a in opted)
    post_event(url, message("1700000500.000200", EMBARGOED, channel=PRIVATE), "EvPriv9")
    fake_slack.wait_for(lambda f: bool(posts_in(f, DESK)), timeout=60)
    (desk_post,) = posts_in(fake_slack, DESK)
    assert f"<#{PRIVATE}>" in desk_post.params["text"]
    assert len(posts_in(fake_slack, PRIVATE)) == 2 and len(posts_in(fake_slack, ADMIN)) == 1
