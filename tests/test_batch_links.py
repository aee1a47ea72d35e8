"""Bad links inside a batch: a page whose charset is no text encoding, and a page whose markup is pathological.

One link's trouble stays that link's: the message it came with is answered whole (its other links classified),
and another user's job in the same batch is not kept waiting on it. Pages come from a local HTTP server, the
worker runs in-process (testkit/inprocess_worker.py), replies go to the fake Slack.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import redis
from rq.job import Job, JobStatus

from store.queues import classify_queue
from testkit.fake_slack import FakeSlack
from testkit.inprocess_worker import enqueue_classify, install_runtime, run_burst, worker_settings
from testkit.page_server import PageHandler, serve_pages
from testkit.redis_server import RedisServer

BODY = "日本代表は試合終了間際のゴールで勝利し、監督は選手をたたえた。プロ野球の開幕戦でエースが完投した。" * 4
TITLE = "サッカー日本代表が勝利"
NESTED_PAGE = ("<html><head><title>入れ子</title></head><body>" + "<p><b><i>x" * 490_000 + "</body></html>").encode()


def page(meta: str = "") -> bytes:
    return (
        f"<html><head>{meta}<title>{TITLE}</title></head>"
        f"<body><article><h1>{TITLE}</h1><p>{BODY}</p></article></body></html>"
    ).encode()


class Pages(PageHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/ok":
            body = page()
        elif url.path == "/charset":
            body = page(f'<meta charset="{query["meta"]}">')
        elif url.path == "/nested":
            body = NESTED_PAGE
        else:
            body = b""
        ctype = "text/html" if url.path == "/charset" else "text/html; charset=utf-8"
        self.send(200 if body else 404, body, ctype)


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serve_pages(Pages) as url:
        yield url


def replies_in(fake: FakeSlack, thread_ts: str) -> list[dict[str, Any]]:
    return [c.params for c in fake.calls_to("chat.postMessage") if c.params.get("thread_ts") == thread_ts]


@pytest.mark.parametrize("charset", ["rot13", "base64"])
def test_a_page_declaring_a_non_text_charset_is_answered_with_the_good_link(
    redis_server: RedisServer,
    redis_conn: redis.Redis,
    fake_slack: FakeSlack,
    model_registry: Path,
    site: str,
    charset: str,
) -> None:
    settings = worker_settings(redis_server.url, fake_slack.api_url, model_registry, fetch_timeout_s=10.0)
    install_runtime(settings, redis_conn)
    queue = classify_queue(redis_conn)
    urls = [f"{site}/charset?meta={charset}", f"{site}/ok", f"{site}/missing"]
    job = enqueue_classify(queue, "<@UBOT> " + " ".join(f"<{u}>" for u in urls), 1)
    run_burst(redis_conn)

    (reply,) = replies_in(fake_slack, "1700000000.000001")
    job = Job.fetch(job.id, connection=redis_conn, serializer=queue.serializer)
    assert job.get_status() == JobStatus.FINISHED
    articles = (job.return_value() or {})["articles"]
    assert [a["url"] for a in articles] == urls
    assert [a.get("title") for a in articles[:2]] == [TITLE, TITLE]  # read as UTF-8, classified
    assert "slug" in articles[0] and "slug" in articles[1]
    assert "接続できませんでした" in articles[2]["error"]  # the 404: its own plain error
    assert "接続できませんでした" in reply["text"] and reply["text"].count(TITLE) == 2
    assert len([b for b in reply["blocks"] if b["type"] == "actions"]) == 2


def test_a_pathological_page_does_not_hold_up_another_users_plain_text(
    redis_server: RedisServer, redis_conn: redis.Redis, fake_slack: FakeSlack, model_registry: Path, site: str
) -> None:
    settings = worker_settings(redis_server.url, fake_slack.api_url, model_registry, fetch_timeout_s=3.0)
    rt = install_runtime(settings, redis_conn)
    queue = classify_queue(redis_conn)
    enqueue_classify(queue, f"<@UBOT> <{site}/nested>", 1, user="UA")
    enqueue_classify(queue, f"<@UBOT> 見出し\n{BODY}", 2, user="UB")
    started = time.time()
    run_burst(redis_conn)
    ended = time.time()

    (plain,) = replies_in(fake_slack, "1700000000.000002")
    (linked,) = replies_in(fake_slack, "1700000000.000001")
    calls = {c.params["thread_ts"]: c.at for c in fake_slack.calls_to("chat.postMessage")}
    plain_s = calls["1700000000.000002"] - started
    linked_s = calls["1700000000.000001"] - started
    burst_s = ended - started
    print(f"plain-text reply after {plain_s:.2f} s, pathological link's after {linked_s:.2f} s, burst {burst_s:.2f} s")
    assert "`" in plain["text"] and "%" in plain["text"]  # classified
    assert "本文を取り出せませんでした" in linked["text"] or "`" in linked["text"]  # its error, or an article
    assert plain_s < 2.0, plain_s
    assert rt.models.batches >= 1
