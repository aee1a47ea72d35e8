"""A burst in a watched channel: 100 articles in half a minute, over signed HTTP, with Slack rate-limiting.

Starts a private redis-server, the local fake Slack Web API, one worker and the bot in HTTP mode (a tiny random
BERT, CONFIDENCE_THRESHOLD=0, WATCH_REPLY=reaction, every label routed to one desk). The fake Slack answers every
7th reactions.add and chat.postMessage with 429 and ``Retry-After: 1``. Messages are delivered one every
``--interval`` seconds on 8 connections, with one of Slack's retries after every tenth.

Reported: ack latency (max, median; Slack wants every ack within 3 s), how long until every message had its
reaction and its cross-post, the 429s waited out, and the gaps between two calls of one method in one channel
(at least SLACK_PACE_S). Checked: every message gets exactly one reaction and exactly one cross-post naming its
permalink, nothing else is posted, the calls are paced; the exit status is 1 when a guarantee did not hold.

    python -m benchmarks.newsroom_burst [--messages 100] [--pace 0.1] [--interval 0.3] [--timeout 300]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import redis

from common.labels import SLUGS
from store import newsroom
from store.newsroom import Route, Watch
from testkit.fake_slack import Call, FakeSlack
from testkit.processes import Proc, product_env, seed_registry, start_bot, start_worker
from testkit.redis_server import RedisServer, free_port
from testkit.samples import SAMPLES, all_texts
from testkit.signing import event_body, signed_json_headers
from testkit.tiny_bert import build_tiny_bert

NEWS, DESK, ADMIN = "CBURST", "CBDESK", "UADMIN"
SECRET = "burst-signing-secret"
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
    if answer.status_code != 200:
        raise RuntimeError(f"event {n} answered {answer.status_code}: {answer.text}")
    return elapsed


def gaps(times: list[float]) -> list[float]:
    ordered = sorted(times)
    return [b - a for a, b in pairwise(ordered)]


def desk_posts(fake: FakeSlack) -> list[Call]:
    return [c for c in fake.calls_to("chat.postMessage") if c.params.get("channel") == DESK and c.status == 200]


def run(*, messages: int, pace_s: float, interval_s: float, timeout: float, work: Path) -> dict[str, Any]:
    """One burst against the whole product; its figures, and ``violations`` (the guarantees that did not hold)."""
    redis_server = RedisServer(work / "redis").start()
    fake = FakeSlack().start()
    connection = redis.Redis.from_url(redis_server.url)
    models = work / "models"
    seed_registry(models, build_tiny_bert(work / "tiny-bert", all_texts()), "20260101-000000-tiny0001")
    env = product_env(
        REDIS_URL=redis_server.url,
        SLACK_API_URL=fake.api_url,
        MODEL_DIR=str(models),
        SLACK_SIGNING_SECRET=SECRET,
        ADMIN_USER_IDS=ADMIN,
        CONFIDENCE_THRESHOLD="0",
        WATCH_REPLY="reaction",
        SLACK_PACE_S=str(pace_s),
        LOG_LEVEL="WARNING",
    )
    newsroom.put_watch(connection, Watch(channel=NEWS, by=ADMIN, at=time.time()))
    fake.add_channel(NEWS)  # both public: every post passes the audience check (conversations.info, kept 60 s)
    fake.add_channel(DESK)
    for slug in SLUGS:
        newsroom.put_route(connection, Route(label=slug, channel=DESK, by=ADMIN, at=time.time()))
    fake.rate_limit("reactions.add", every=7, retry_after=1)
    fake.rate_limit("chat.postMessage", every=7, retry_after=1)
    port = free_port()
    procs: list[Proc] = []
    try:
        procs.append(start_worker(env, work / "run"))
        procs.append(start_bot(env, port, work / "run"))
        url = f"http://127.0.0.1:{port}/slack/events"

        # One message every interval_s on 8 connections, as Slack delivers them, however long each ack takes;
        # a Slack retry of every tenth message shortly after it.
        deliveries = [(n, False) for n in range(messages)]
        for n in range(0, messages, 10):
            deliveries.insert(n + n // 10 + 5, (n, True))
        started = time.perf_counter()

        def deliver(index: int) -> float:
            time.sleep(max(0.0, started + index * interval_s - time.perf_counter()))  # the burst's own schedule
            return post(url, *deliveries[index])

        with ThreadPoolExecutor(8) as pool:
            acks = list(pool.map(deliver, range(len(deliveries))))
        sent_s = time.perf_counter() - started

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (
            len(fake.reactions) >= messages and len(desk_posts(fake)) >= messages
        ):
            time.sleep(0.1)
        done_s = time.perf_counter() - started
        time.sleep(2.0)  # room for a duplicate to show itself
    finally:
        for proc in procs:
            proc.stop()
        connection.close()
        redis_server.stop()
    fake.stop()

    reactions = fake.calls_to("reactions.add")
    all_posts = fake.calls_to("chat.postMessage")
    posts = desk_posts(fake)
    permalinks = [f"/archives/{NEWS}/p{ts_of(n).replace('.', '')}" for n in range(messages)]
    named = sorted(next((p for p in permalinks if p in post.params["text"]), "") for post in posts)
    reaction_gaps = gaps([c.at for c in reactions]) or [0.0]
    post_gaps = gaps([c.at for c in all_posts]) or [0.0]
    checks = {
        "every ack within 3 s": max(acks) < 3,
        "one reaction on every message, none elsewhere": (
            sorted(fake.reactions) == [(NEWS, ts_of(n)) for n in range(messages)]
            and all(len(names) == 1 for names in fake.reactions.values())
            and len([c for c in reactions if c.status == 200]) == messages
        ),
        "one cross-post per message, naming its permalink": named == sorted(permalinks)
        and all("feedback_correct" in json.dumps(post.params["blocks"]) for post in posts),
        "nothing else posted": [c.params["channel"] for c in all_posts if c.status == 200] == [DESK] * messages,
        "429s happened and were waited out": any(c.status == 429 for c in reactions)
        and any(c.status == 429 for c in all_posts),
        # A little timer slack below SLACK_PACE_S.
        "calls in one channel paced": min(reaction_gaps) >= pace_s * 0.8 and min(post_gaps) >= pace_s * 0.8,
    }
    return {
        "deliveries": len(deliveries),
        "messages": messages,
        "redeliveries": len(deliveries) - messages,
        "sent_s": sent_s,
        "ack_max_ms": max(acks) * 1000,
        "ack_median_ms": statistics.median(acks) * 1000,
        "all_answered_s": done_s,
        "reactions_429": sum(1 for c in reactions if c.status == 429),
        "posts_429": sum(1 for c in all_posts if c.status == 429),
        "reaction_gap_min_s": min(reaction_gaps),
        "reaction_gap_median_s": statistics.median(reaction_gaps),
        "post_gap_min_s": min(post_gaps),
        "post_gap_median_s": statistics.median(post_gaps),
        "slack_pace_s": pace_s,
        "violations": [name for name, held in checks.items() if not held],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--pace", type=float, default=0.1, help="SLACK_PACE_S of the worker")
    parser.add_argument("--interval", type=float, default=0.3, help="seconds between two deliveries")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for every answer")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="newsbot-burst-") as tmp:
        result = run(
            messages=args.messages, pace_s=args.pace, interval_s=args.interval, timeout=args.timeout, work=Path(tmp)
        )
    print(f"machine: {platform.node()} {platform.machine()} cpus={len(os.sched_getaffinity(0))}")
    width = max(len(k) for k in result)
    for key, value in result.items():
        if key != "violations":
            print(f"{key:{width}}  {value:.3f}" if isinstance(value, float) else f"{key:{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if result["violations"]:
        print(f"GUARANTEES VIOLATED: {', '.join(result['violations'])}")
        return 1
    print("guarantees held: every event acked within 3 s, one reaction and one cross-post per message, paced")
    return 0


if __name__ == "__main__":
    sys.exit(main())
