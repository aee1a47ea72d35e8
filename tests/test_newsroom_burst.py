"""A burst in a watched channel: 100 articles in half a minute, over signed HTTP, with Slack rate-limiting.

Fake Slack answers every 7th reactions.add and chat.postMessage with 429 and ``Retry-After: 1``. Every event
must be acked within 3 s, and every message get exactly one reaction and exactly one cross-post to its desk:
nothing lost, nothing twice (some events are also redelivered), and the worker's calls spaced by SLACK_PACE_S
in each channel. The measured figures are printed (``pytest -s``).
"""

from __future__ import annotations

import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path

import httpx
import redis

from common.labels import SLUGS
from store import newsroom
from store.newsroom import Route, Watch
from testkit.fake_slack import Call, FakeSlack
from testkit.processes import Proc, product_env, start_bot, start_worker
from testkit.redis_server import RedisServer, free_port
from testkit.samples import SAMPLES
from testkit.signing import event_body, signed_json_headers
from testkit.slack_requests import SECRET

NEWS, DESK, ADMIN = "CBURST", "CBDESK", "UADMIN"
MESSAGES = 100
REDELIVERED = 10
PACE_S = 0.1
SEND_INTERVAL_S = 0.3
ARTICLES = [("".join(texts) * 3) for texts in SAMPLES.values()]


def ts_of(n: int) -> str:
    return f"1700000600.{n:06d}"


def post(url: str, n: int, retry: bool = False) -> float:
    """Deliver message ``n`` (again, as Slack's retry, when ``retry``); the seconds until it was acked."""
    event = {
        "type": "message",
        "channel": NEWS,
        "channel_type": "channel",
        "user": f"U{n % 7}",
        "text": ARTICLES[n % len(ARTICLES)],
        "ts": ts_of(n),
        "event_ts": ts_of(n),
    }
    body = event_body(event, f"EvBurst{n:03d}")
    headers = signed_json_headers(body, SECRET)
    if retry:
        headers |= {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    started = time.perf_counter()
    answer = httpx.post(url, content=body, headers=headers, timeout=20)
    elapsed = time.perf_counter() - started
    assert answer.status_code == 200, answer.text
    return elapsed


def gaps(times: list[float]) -> list[float]:
    ordered = sorted(times)
    return [b - a for a, b in pairwise(ordered)]


def test_a_burst_of_100_articles_is_answered_once_each_within_the_rate_limits(
    tmp_path: Path, redis_server: RedisServer, redis_conn: redis.Redis, fake_slack: FakeSlack, model_registry: Path
) -> None:
    env = product_env(
        REDIS_URL=redis_server.url,
        SLACK_API_URL=fake_slack.api_url,
        MODEL_DIR=str(model_registry),
        SLACK_SIGNING_SECRET=SECRET,
        ADMIN_USER_IDS=ADMIN,
        CONFIDENCE_THRESHOLD="0",
        WATCH_REPLY="reaction",
        SLACK_PACE_S=str(PACE_S),
    )
    newsroom.put_watch(redis_conn, Watch(channel=NEWS, by=ADMIN, at=time.time()))
    for slug in SLUGS:
        newsroom.put_route(redis_conn, Route(label=slug, channel=DESK, by=ADMIN, at=time.time()))
    fake_slack.rate_limit("reactions.add", every=7, retry_after=1)
    fake_slack.rate_limit("chat.postMessage", every=7, retry_after=1)
    port = free_port()
    procs: list[Proc] = []
    try:
        procs.append(start_worker(env, tmp_path))
        procs.append(start_bot(env, port, tmp_path))
        url = f"http://127.0.0.1:{port}/slack/events"

        # 100 messages (and 10 of Slack's retries among them) in half a minute: one every SEND_INTERVAL_S,
        # on 8 connections, as Slack delivers them, however long each ack takes.
        deliveries = [(n, False) for n in range(MESSAGES)]
        for n in range(0, MESSAGES, 10):
            deliveries.insert(n + n // 10 + 5, (n, True))
        started = time.perf_counter()

        def deliver(index: int) -> float:
            time.sleep(max(0.0, started + index * SEND_INTERVAL_S - time.perf_counter()))
            return post(url, *deliveries[index])

        with ThreadPoolExecutor(8) as pool:
            acks = list(pool.map(deliver, range(len(deliveries))))
        sent_s = time.perf_counter() - started

        def answered(f: FakeSlack) -> bool:
            return len(f.reactions) >= MESSAGES and len(desk_posts(f)) >= MESSAGES

        fake_slack.wait_for(answered, timeout=300)
        done_s = time.perf_counter() - started
        time.sleep(2)  # anything duplicated would show up now
    finally:
        for proc in procs:
            proc.stop()

    assert len(deliveries) == MESSAGES + REDELIVERED
    assert max(acks) < 3, f"slowest ack {max(acks):.3f}s"
    # Exactly one reaction on every message, none refused as already there, none elsewhere.
    assert sorted(fake_slack.reactions) == [(NEWS, ts_of(n)) for n in range(MESSAGES)]
    assert all(len(names) == 1 for names in fake_slack.reactions.values())
    reactions = fake_slack.calls_to("reactions.add")
    limited_reactions = [c for c in reactions if c.status == 429]
    assert len([c for c in reactions if c.status == 200]) == MESSAGES
    # Exactly one cross-post per message, each naming its own message's permalink.
    posts = desk_posts(fake_slack)
    permalinks = [f"/archives/{NEWS}/p{ts_of(n).replace('.', '')}" for n in range(MESSAGES)]
    assert sorted(next(p for p in permalinks if p in post.params["text"]) for post in posts) == sorted(permalinks)
    assert all("feedback_correct" in json.dumps(post.params["blocks"]) for post in posts)
    all_posts = fake_slack.calls_to("chat.postMessage")
    limited_posts = [c for c in all_posts if c.status == 429]
    assert [c.params["channel"] for c in all_posts if c.status == 200] == [DESK] * MESSAGES  # nothing else posted
    assert limited_reactions and limited_posts  # the 429s happened, and were waited out
    # Paced: successive calls of one method in one channel at least SLACK_PACE_S apart (a little timer slack).
    reaction_gaps = gaps([c.at for c in reactions])
    post_gaps = gaps([c.at for c in all_posts])
    assert min(reaction_gaps) >= PACE_S * 0.8 and min(post_gaps) >= PACE_S * 0.8

    print(
        f"\nburst: {len(deliveries)} deliveries ({MESSAGES} messages + {REDELIVERED} redeliveries) sent in "
        f"{sent_s:.1f}s; acks max {max(acks) * 1000:.0f} ms, median {statistics.median(acks) * 1000:.0f} ms; "
        f"all {MESSAGES} reactions and cross-posts done {done_s:.1f}s after the first event; "
        f"429s waited out: {len(limited_reactions)} reactions.add, {len(limited_posts)} chat.postMessage; "
        f"gaps between calls in one channel: reactions min {min(reaction_gaps):.3f}s / median "
        f"{statistics.median(reaction_gaps):.3f}s, cross-posts min {min(post_gaps):.3f}s / median "
        f"{statistics.median(post_gaps):.3f}s (SLACK_PACE_S={PACE_S})"
    )


def desk_posts(fake: FakeSlack) -> list[Call]:
    return [c for c in fake.calls_to("chat.postMessage") if c.params.get("channel") == DESK and c.status == 200]
