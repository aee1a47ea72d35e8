"""Replies: links classified into one message, /classify-news through response_url, and each failure in plain words."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rq.job import Job, JobStatus

from common.labels import SLUGS
from store import classifications
from store.queues import classify_queue
from testkit.fake_slack import FakeSlack
from testkit.inprocess_worker import enqueue_classify, install_runtime, run_burst, worker_settings
from testkit.page_server import PageHandler, serve_pages
from testkit.redis_server import RedisServer
from worker.jobs import Runtime

BODY = "日本代表は試合終了間際のゴールで勝利し、監督は選手をたたえた。プロ野球の開幕戦でエースが完投した。" * 4


class Pages(PageHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/article"):
            body = f"<html><head><title>記事 {self.path}</title></head><body><article><p>{BODY}</p></article></body>"
        elif self.path == "/teaser":
            body = "<html><head><title>有料</title></head><body><p>続きは会員登録で。</p></body></html>"
        else:
            self.send(404, b"", None)
            return
        self.send(200, body.encode(), "text/html; charset=utf-8")


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serve_pages(Pages) as url:
        yield url


@pytest.fixture
def rt(redis_server: RedisServer, redis_conn: redis.Redis, fake_slack: FakeSlack, model_registry: Path) -> Runtime:
    return install_runtime(worker_settings(redis_server.url, fake_slack.api_url, model_registry), redis_conn)


def one_reply(fake_slack: FakeSlack, thread_ts: str) -> dict[str, Any]:
    posts = [c for c in fake_slack.calls_to("chat.postMessage") if c.params.get("thread_ts") == thread_ts]
    assert len(posts) == 1, [c.params for c in fake_slack.calls]
    return posts[0].params


def test_several_links_get_one_reply_with_a_section_and_record_each(
    rt: Runtime, redis_conn: redis.Redis, fake_slack: FakeSlack, site: str
) -> None:
    queue = classify_queue(redis_conn)
    text = f"<@UBOT> <{site}/article/1|一つ目> と {site}/article/2 と <{site}/teaser>"
    job = enqueue_classify(queue, text, 1)
    run_burst(redis_conn)

    assert rt.models.batches == 1  # the message's two articles: one forward pass
    reply = one_reply(fake_slack, "1700000000.000001")
    result = Job.fetch(job.id, connection=redis_conn, serializer=queue.serializer).return_value()
    assert result is not None
    articles = result["articles"]
    assert [a.get("url") for a in articles] == [f"{site}/article/1", f"{site}/article/2", f"{site}/teaser"]
    assert [a.get("record_id") for a in articles[:2]] == [f"{job.id}:1", f"{job.id}:2"]
    assert "error" in articles[2]
    assert result["slug"] in SLUGS and result["url"] == f"{site}/article/1"
    assert result["title"] == "記事 /article/1"
    feedback = ("feedback_correct", "feedback_wrong")  # (unsure answers also ask "which desk?" in the same block)
    buttons = [
        e["value"]
        for b in reply["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] in feedback
    ]
    assert sorted(set(buttons)) == [f"{job.id}:1", f"{job.id}:2"]
    assert "記事 /article/1" in str(reply["blocks"])
    assert "本文を取り出せませんでした" in reply["text"] and "No usable article text" in reply["text"]
    for record_id in (f"{job.id}:1", f"{job.id}:2"):
        record = classifications.get_classification(redis_conn, record_id)
        assert record.url.startswith(site)
        assert record.ts == result["ts"] != ""  # the ts Slack gave the reply
        assert record.title.startswith("記事 /article/") and BODY[:20] in record.body


def test_too_many_links_are_said(rt: Runtime, redis_conn: redis.Redis, fake_slack: FakeSlack, site: str) -> None:
    queue = classify_queue(redis_conn)
    links = " ".join(f"<{site}/article/{i}>" for i in range(7))
    enqueue_classify(queue, links, 2)
    run_burst(redis_conn)
    reply = one_reply(fake_slack, "1700000000.000002")
    assert "Only 5 links per message are read; 2 more were skipped" in reply["text"]
    assert reply["text"].count("`") >= 10  # five slugs named


def test_slash_command_results_go_to_the_response_url(
    rt: Runtime, redis_conn: redis.Redis, fake_slack: FakeSlack
) -> None:
    queue = classify_queue(redis_conn)
    job = enqueue_classify(
        queue,
        f"見出し\n{BODY}",
        3,
        response_url=fake_slack.response_url("classify3"),
        response_type="ephemeral",
        source="command",
    )
    run_burst(redis_conn)
    assert fake_slack.calls_to("chat.postMessage") == []
    (call,) = fake_slack.calls_to("response_url")
    assert call.params["_name"] == "classify3"
    assert call.params["response_type"] == "ephemeral"
    named = [slug for slug in SLUGS if f"`{slug}`" in call.params["text"]]
    assert len(named) == 1 and "%" in call.params["text"]
    assert any(b["type"] == "actions" for b in call.params["blocks"])
    record = classifications.get_classification(redis_conn, job.id)
    assert record.ts == "" and record.title == "見出し" and record.body == BODY


@pytest.mark.parametrize(
    ("text", "expected_ja", "expected_en"),
    [
        ("<@UBOT>   ", "分類する本文がありません", "There is no article text"),
        ("<@UBOT> http://169.254.169.254/latest/meta-data/", "安全のため", "For safety this link was not opened"),
        ("<@UBOT> <http://127.0.0.1:9/news>", "接続できませんでした", "could not be reached"),
        ("<@UBOT> {site}/teaser", "本文を取り出せませんでした", "No usable article text"),
    ],
)
def test_each_failure_is_said_in_the_thread(
    rt: Runtime,
    redis_conn: redis.Redis,
    fake_slack: FakeSlack,
    site: str,
    text: str,
    expected_ja: str,
    expected_en: str,
) -> None:
    queue = classify_queue(redis_conn)
    job = enqueue_classify(queue, text.format(site=site), 4)
    run_burst(redis_conn)
    reply = one_reply(fake_slack, "1700000000.000004")
    assert expected_ja in reply["text"] and expected_en in reply["text"]
    assert reply["channel"] == "C42"
    job = Job.fetch(job.id, connection=redis_conn, serializer=queue.serializer)
    assert job.get_status() == JobStatus.FINISHED  # the user's input, not a failure of ours: not retried
    assert "error" in (job.return_value() or {})


def test_no_model_yet_says_an_admin_must_retrain(
    redis_server: RedisServer, redis_conn: redis.Redis, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    install_runtime(worker_settings(redis_server.url, fake_slack.api_url, tmp_path / "empty-models"), redis_conn)
    queue = classify_queue(redis_conn)
    enqueue_classify(queue, f"見出し\n{BODY}", 5)
    run_burst(redis_conn)
    reply = one_reply(fake_slack, "1700000000.000005")
    assert "/retrain" in reply["text"] and "an admin must run /retrain" in reply["text"]
