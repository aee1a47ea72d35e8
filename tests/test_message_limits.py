"""Replies built from outside strings: no live Slack markup from a page or a user, and within Slack's size limits.

Pages come from a local HTTP server, the worker runs in-process (testkit/inprocess_worker.py) and replies go to
the fake Slack, which refuses messages over Slack's limits (testkit/fake_slack.py) the way Slack does.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st
from rq.job import Job
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from common.articles import Article
from common.jobs import AdminRequest, ClassifyRequest
from common.mrkdwn import escape, link, one_line, truncate
from newsmodel.prediction import Prediction
from store import serving
from store.feedback import FeedbackCounts
from store.queues import classify_queue
from store.serving import ServingState
from testkit.fake_slack import FakeSlack, message_error
from testkit.inprocess_worker import enqueue_classify, install_runtime, run_burst, worker_settings
from testkit.page_server import PageHandler, serve_pages
from testkit.redis_server import RedisServer
from ui.feedback import with_counts
from ui.replies import reply_message
from ui.reports import progress_text
from worker import admin
from worker.jobs import Runtime
from worker.pipeline import ArticleResult
from worker.slack import SlackDeliveryError, SlackReplier, web_client

BODY = "日本代表は試合終了間際のゴールで勝利し、監督は選手をたたえた。プロ野球の開幕戦でエースが完投した。" * 4
LIVE = ("<!channel>", "<@U123>", "<!here>", "<!everyone>")
# Every "&" in escaped text starts one of Slack's three entities; a cut inside one leaves a bare "&".
BROKEN_ENTITY = re.compile(r"&(?!amp;|lt;|gt;)")
# Page path -> (title, body), served as HTML with the title escaped for HTML (so it is parsed back exactly).
PAGES: dict[str, tuple[str, str]] = {}


class Pages(PageHandler):
    def do_GET(self) -> None:
        if self.path not in PAGES:
            self.send(404, b"", None)
            return
        title, body = PAGES[self.path]
        page = (
            f"<html><head><title>{html.escape(title)}</title></head>"
            f"<body><article><h1>{html.escape(title)}</h1><p>{html.escape(body)}</p></article></body></html>"
        )
        self.send(200, page.encode(), "text/html; charset=utf-8")


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serve_pages(Pages) as url:
        yield url


def runtime(redis_server: RedisServer, conn: redis.Redis, fake: FakeSlack, models: Path, **settings: Any) -> Runtime:
    settings.setdefault("fetch_timeout_s", 10.0)  # a busy test machine must not time out these small pages
    return install_runtime(worker_settings(redis_server.url, fake.api_url, models, **settings), conn)


def the_reply(fake: FakeSlack, thread_ts: str) -> dict[str, Any]:
    calls = [c for c in fake.calls_to("chat.postMessage") if c.params.get("thread_ts") == thread_ts]
    assert [c.error for c in calls] == [None], [(c.error, len(str(c.params))) for c in calls]
    return calls[0].params


def texts(message: dict[str, Any]) -> list[str]:
    """The ``text`` and every text object's text in the blocks."""
    found = [message["text"]]

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("text"), str):
                found.append(value["text"])
            for child in value.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)

    walk(message.get("blocks") or [])
    return found


def block_chars(message: dict[str, Any]) -> int:
    return sum(len(t) for t in texts(message)[1:])


def assert_within_budget(message: dict[str, Any]) -> None:
    assert message_error(message) is None
    assert len(message["text"]) <= 4000
    assert len(message["blocks"]) <= 49  # room for the bot's feedback-counts block
    assert block_chars(message) <= 10_000
    assert all(len(t) <= 3000 for t in texts(message)[1:])
    for text in texts(message):
        assert not BROKEN_ENTITY.search(text), text[:200]
    counts = FeedbackCounts(confirmed=1, corrections={"peachy": 1})
    grown = {**message, "blocks": with_counts(message["blocks"], counts)}
    assert message_error(grown) is None  # the bot's chat.update after a click is accepted too


# -- one escape, everywhere ----------------------------------------------------------------------------------


@given(st.text())
def test_escaped_text_has_no_markup_and_reads_back(text: str) -> None:
    escaped = escape(text)
    assert "<" not in escaped and ">" not in escaped and not BROKEN_ENTITY.search(escaped)
    assert escaped.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == text


@given(st.text(alphabet="&<>ab", max_size=300), st.integers(min_value=1, max_value=400))
def test_a_limited_escape_never_cuts_inside_an_entity(text: str, limit: int) -> None:
    escaped = escape(text, limit)
    assert len(escaped) <= limit
    assert not BROKEN_ENTITY.search(escaped)
    assert "<" not in escaped and ">" not in escaped


def test_titles_are_one_line_and_cut_with_an_ellipsis() -> None:
    assert one_line("  a\nb\t c ") == "a b c"
    cut = one_line("あ" * 10_000)
    assert len(cut) == 150 and cut.endswith("…")
    assert truncate("abc", 3) == "abc" and truncate("abcd", 3) == "ab…"


def test_a_link_cannot_be_closed_early_by_its_url_or_label() -> None:
    linked = link("https://x.test/a|b>c<d", "<!channel> & co")
    assert linked == "<https://x.test/a%7Cb%3Ec%3Cd|&lt;!channel&gt; &amp; co>"
    long_url = "https://x.test/" + "a" * 5000
    assert "<" not in link(long_url, "<t>") and link(long_url, "<t>") == "&lt;t&gt;"


def test_a_page_titled_with_mentions_is_quoted_not_mentioned(
    redis_server: RedisServer, redis_conn: redis.Redis, fake_slack: FakeSlack, model_registry: Path, site: str
) -> None:
    runtime(redis_server, redis_conn, fake_slack, model_registry)
    title = "<!channel> <@U123> &amp;"
    PAGES["/mentions"] = (title, BODY)
    PAGES["/mentions-too"] = ("<!here> <!everyone> 速報", BODY)
    queue = classify_queue(redis_conn)
    job = enqueue_classify(queue, f"<@UBOT> <{site}/mentions> <{site}/mentions-too>", 1)
    # A user's pasted article whose first line (its title) holds markup Slack had escaped for them.
    enqueue_classify(queue, f"<@UBOT> &lt;!channel&gt; &lt;@U123&gt; 見出し\n{BODY}", 2)
    run_burst(redis_conn)

    result = Job.fetch(job.id, connection=redis_conn, serializer=queue.serializer).return_value()
    # The page's title as extracted (trafilatura reads the page's "&amp;amp;" as "&").
    assert result is not None and result.get("title") == "<!channel> <@U123> &", result
    for thread in ("1700000000.000001", "1700000000.000002"):
        reply = the_reply(fake_slack, thread)
        for text in texts(reply):
            assert not any(live in text for live in LIVE), text
        assert "&lt;!channel&gt; &lt;@U123&gt;" in reply["text"]  # shown as written
        assert any("&lt;!channel&gt; &lt;@U123&gt;" in t for t in texts(reply)[1:])
    assert "&lt;@U123&gt; &amp;:" in the_reply(fake_slack, "1700000000.000001")["text"]


# -- the fake refuses what Slack refuses -----------------------------------------------------------------------


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"text": "x", "blocks": [section("x")] * 51}, "invalid_blocks"),
        ({"text": "x", "blocks": [section("x" * 3001)]}, "invalid_blocks"),
        ({"text": "x", "blocks": [section("x" * 2500)] * 5}, "msg_blocks_too_long"),
        ({"text": "x" * 4001}, "msg_too_long"),
        ({"text": "x", "blocks": [section("x" * 3000)] * 4}, None),
    ],
)
def test_the_fake_refuses_messages_over_slacks_limits(
    fake_slack: FakeSlack, message: dict[str, Any], error: str | None
) -> None:
    client = WebClient(token="xoxb-test", base_url=fake_slack.api_url)
    for method in ("chat_postMessage", "chat_update", "chat_postEphemeral"):
        extra = {"ts": "1.1"} if method == "chat_update" else {"user": "U1"} if method == "chat_postEphemeral" else {}
        call = getattr(client, method)
        if error is None:
            assert call(channel="C1", **extra, **message)["ok"]
        else:
            with pytest.raises(SlackApiError) as refused:
                call(channel="C1", **extra, **message)
            assert refused.value.response["error"] == error
    answer = WebhookClient(fake_slack.response_url("limits")).send(**message)
    assert answer.status_code == (200 if error is None else 400)
    calls = fake_slack.calls
    assert [c.error for c in calls] == [error] * 4 and all(c.delivered == (error is None) for c in calls)


def test_a_refused_response_url_post_is_a_delivery_error(fake_slack: FakeSlack) -> None:
    replier = SlackReplier(WebClient(token="xoxb-test", base_url=fake_slack.api_url))
    request = ClassifyRequest(request_id="r", text="t", channel="C1", user="U1", response_url=fake_slack.response_url())
    with pytest.raises(SlackDeliveryError):
        replier.post(request, {"text": "x", "blocks": [section("x")] * 51})


# -- worst cases -----------------------------------------------------------------------------------------------


def test_five_links_with_ten_thousand_character_titles_fit(
    redis_server: RedisServer, redis_conn: redis.Redis, fake_slack: FakeSlack, model_registry: Path, site: str
) -> None:
    runtime(redis_server, redis_conn, fake_slack, model_registry)
    for i in range(5):
        PAGES[f"/huge/{i}"] = (f"見出し{i} " + "長い見出し" * 2000, BODY * 30)
    enqueue_classify(classify_queue(redis_conn), " ".join(f"<{site}/huge/{i}>" for i in range(5)), 3)
    run_burst(redis_conn)
    reply = the_reply(fake_slack, "1700000000.000003")
    assert_within_budget(reply)
    assert len([b for b in reply["blocks"] if b["type"] == "actions"]) == 5  # all five answered
    for i in range(5):
        shown = re.search(rf"\|(見出し{i} [^>]*)>", json.dumps(reply["blocks"], ensure_ascii=False))
        assert shown is not None and len(shown.group(1)) == 150 and shown.group(1).endswith("…")


def test_titles_full_of_escapable_characters_fit_and_stay_whole(
    redis_server: RedisServer, redis_conn: redis.Redis, fake_slack: FakeSlack, model_registry: Path, site: str
) -> None:
    runtime(redis_server, redis_conn, fake_slack, model_registry)
    for i in range(5):
        PAGES[f"/amp/{i}"] = (f"T{i} " + "&<>" * 3333, BODY)
    enqueue_classify(classify_queue(redis_conn), " ".join(f"<{site}/amp/{i}>" for i in range(5)), 4)
    run_burst(redis_conn)
    reply = the_reply(fake_slack, "1700000000.000004")
    assert_within_budget(reply)
    assert len([b for b in reply["blocks"] if b["type"] == "actions"]) == 5
    assert "&amp;&lt;&gt;" in reply["text"]


def test_thirteen_links_in_one_message_fit_and_the_rest_is_counted(
    redis_server: RedisServer, redis_conn: redis.Redis, fake_slack: FakeSlack, model_registry: Path, site: str
) -> None:
    runtime(redis_server, redis_conn, fake_slack, model_registry, max_links_per_message=13)
    for i in range(13):
        PAGES[f"/many/{i}"] = (f"記事{i} " + "見出し" * 60, BODY)
    enqueue_classify(classify_queue(redis_conn), " ".join(f"<{site}/many/{i}>" for i in range(13)), 5)
    run_burst(redis_conn)
    reply = the_reply(fake_slack, "1700000000.000005")
    assert_within_budget(reply)
    buttons = len([b for b in reply["blocks"] if b["type"] == "actions"])
    assert 10 <= buttons < 13
    left_out = 13 - buttons
    assert f"{left_out} of 13 results did not fit in this reply" in str(reply["blocks"])


def _results(count: int, title: str, url: str | None = "https://news.test/a/{i}") -> list[ArticleResult]:
    scores = {"sports-watch": 0.7, "it-life-hack": 0.2, "movie-enter": 0.1}
    items = []
    for i in range(count):
        prediction = Prediction(scores=scores)
        items.append(
            ArticleResult(
                url=url.format(i=i) if url else None,
                article=Article(title=title.format(i=i), body=BODY),
                prediction=prediction,
                model_version="20260101-000000-tiny0001",
                record_id=f"classify-x:{i + 1}",
            )
        )
    return items


@pytest.mark.parametrize("count", [13, 60])
@pytest.mark.parametrize("title", ["記事{i}", "{i} " + "&<>" * 3333, "{i} " + "x" * 10_000])
def test_many_articles_are_cut_to_what_slack_accepts(fake_slack: FakeSlack, count: int, title: str) -> None:
    items = _results(count, title)
    items[3] = ArticleResult(url="https://news.test/" + "<!channel>&" * 500, error=None)  # a failed link
    message = reply_message(items, dropped=4, max_links=count)
    assert_within_budget(message)
    replier = SlackReplier(web_client(worker_settings("redis://unused", fake_slack.api_url, Path("unused"))))
    request = ClassifyRequest(request_id="r", text="t", channel="C1", user="U1", thread_ts="1.1")
    assert replier.post(request, message)
    assert fake_slack.calls_to("chat.postMessage")[-1].delivered
    shown = len([b for b in message["blocks"] if b["type"] in ("actions",)]) + 1  # + the failed link's section
    notes = message["blocks"][-1]["elements"][0]["text"]
    assert f"{count - shown} of {count} results did not fit" in notes
    assert "Only" in notes and "4 more were skipped" in notes
    assert "4 more were skipped" in message["text"] and "did not fit" in message["text"]


# -- admin and training texts ----------------------------------------------------------------------------------


def test_admin_texts_quote_outside_strings(
    redis_server: RedisServer, redis_conn: redis.Redis, fake_slack: FakeSlack, model_registry: Path
) -> None:
    rt = runtime(redis_server, redis_conn, fake_slack, model_registry)
    serving.publish_serving_state(
        redis_conn, ServingState(worker="w1", version="v", last_error="could not load /m/<!channel>"), 5.0
    )
    status = admin.status_text(rt.settings, redis_conn)
    assert "<!channel>" not in status and "/m/&lt;!channel&gt;" in status
    request = AdminRequest(
        request_id="r", user="U1", channel="C1", response_url=fake_slack.response_url("rb"), version="<!channel>"
    )
    admin.rollback(request.to_dict())
    (answer,) = fake_slack.calls_to("response_url")
    assert "<!channel>" not in answer.params["text"] and "&lt;!channel&gt;" in answer.params["text"]
    line = progress_text(
        phase="<!here>", step=1, total_steps=2, epoch=None, elapsed_s=1, eta_s=None, metrics=None, message="<@U1>"
    )
    assert "<!here>" not in line and "<@U1>" not in line
