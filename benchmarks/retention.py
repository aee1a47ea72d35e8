"""Redis growth per 1,000 classified articles: the real worker path against a private redis-server.

1,000 synthetic Japanese articles of about 2,000 characters (pasted into mentions, one per message) go
through the product's BatchingWorker in this process (tiny random BERT: the size of what is stored does not
depend on the model), replies to a local fake Slack over HTTP. Each request also gets the bot's delivery
claim. Then one record in ten gets a feedback answer and a reply snapshot, as when people click.
Reported: INFO memory's used_memory before and after, and MEMORY USAGE (exact, SAMPLES 0) summed per kind of
key, with each kind's TTL (RQ's job hashes and results live here 10 minutes; the bot gives them
JOB_RESULT_TTL_S, 7 days).

    python -m benchmarks.retention [--articles 1000] [--chars 2000] [--out benchmarks/results/retention.txt]
"""

from __future__ import annotations

import argparse
import random
import re
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import redis

from newsmodel.registry import set_current
from store import classifications, deliveries
from store.classifications import ClassificationRecord
from store.feedback import FeedbackStore
from store.queues import classify_queue
from testkit.fake_slack import FakeSlack
from testkit.inprocess_worker import enqueue_classify, install_runtime, run_burst, worker_settings
from testkit.redis_server import RedisServer
from testkit.samples import SAMPLES, all_texts
from testkit.tiny_bert import build_tiny_bert

# Kinds of keys, by pattern; the first that matches names a key.
KINDS = [
    ("newsbot:classification:*", re.compile(r"^newsbot:classification:")),
    ("newsbot:feedback:message:*", re.compile(r"^newsbot:feedback:message:")),
    ("newsbot:feedback:index", re.compile(r"^newsbot:feedback:index$")),
    ("newsbot:feedback:*", re.compile(r"^newsbot:feedback:")),
    ("newsbot:replied:*", re.compile(r"^newsbot:replied:")),
    ("newsbot:delivery:*", re.compile(r"^newsbot:delivery:")),
    ("rq:job:* (job hash)", re.compile(r"^rq:job:")),
    ("rq:results:* (result stream)", re.compile(r"^rq:results:")),
    ("rq:finished:classify", re.compile(r"^rq:finished:")),
    ("rq:* (other)", re.compile(r"^rq:")),
    ("other", re.compile(r"")),
]


def synthetic_article(n: int, chars: int, rng: random.Random) -> str:
    """A title line and a body of about ``chars`` characters, made of the test sentences of one category."""
    slug = list(SAMPLES)[n % len(SAMPLES)]
    pool = [s for text in SAMPLES[slug] for s in text.split("。") if s]
    body = ""
    while len(body) < chars:
        body += rng.choice(pool) + "。"
    return f"ニュース{n}号：{SAMPLES[slug][0][:18]}\n{body[:chars]}"


def kind_of(key: str) -> str:
    return next(name for name, pattern in KINDS if pattern.search(key))


def usage_by_kind(conn: redis.Redis) -> dict[str, dict[str, Any]]:
    kinds: dict[str, dict[str, Any]] = defaultdict(lambda: {"keys": 0, "bytes": 0, "ttl": set()})
    for raw in conn.scan_iter(count=1000):
        key = raw.decode()
        entry = kinds[kind_of(key)]
        entry["keys"] += 1
        entry["bytes"] += int(conn.memory_usage(key, samples=0) or 0)
        ttl = int(conn.ttl(key))  # type: ignore[arg-type]
        entry["ttl"].add("none" if ttl == -1 else f"{round(ttl / 86400)} d" if ttl > 86400 - 3600 else "< 1 d")
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--chars", type=int, default=2000)
    parser.add_argument("--feedback-every", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = RedisServer(root / "redis").start()
        fake = FakeSlack().start()
        try:
            model = build_tiny_bert(root / "models" / "20260101-000000-tiny0001", all_texts())
            set_current(root / "models", model.name)
            conn = redis.Redis.from_url(server.url)
            settings = worker_settings(server.url, fake.api_url, root / "models")
            install_runtime(settings, conn)
            conn.flushall()
            before = int(conn.info("memory")["used_memory"])

            rng = random.Random(0)
            queue = classify_queue(conn)
            started = time.monotonic()
            lengths = []
            for n in range(args.articles):
                text = synthetic_article(n, args.chars, rng)
                lengths.append(len(text))
                deliveries.claim_delivery(conn, f"Ev{n:06d}")  # what the bot writes for each request
                enqueue_classify(queue, f"<@UBOT> {text}", n, request_id=f"Ev{n:06d}")
            run_burst(conn)
            elapsed = time.monotonic() - started
            store = FeedbackStore(conn)
            prefix = classifications.ClassificationRecord.KEY.prefix
            records = sorted(k.decode().removeprefix(prefix) for k in conn.keys(f"{prefix}*"))
            for record_id in records[:: args.feedback_every]:
                store.remember_message(record_id, {"channel": "C42", "ts": "1.2", "text": "x" * 400, "blocks": []})
                store.record(record_id, "U1", store.classification(record_id).slug)
            after = int(conn.info("memory")["used_memory"])
            kinds = usage_by_kind(conn)
            sample = store.classification(records[0])
        finally:
            fake.stop()
            server.stop()

    lines = [
        f"Redis growth for {args.articles} articles of ~{args.chars} chars (mean {sum(lengths) / len(lengths):.0f}"
        f" chars incl. title), {len(records)} records, feedback on 1 in {args.feedback_every}"
        f" ({elapsed:.0f} s through the worker)",
        f"RECORD_BODY_MAX_CHARS={classifications.RECORD_BODY_MAX_CHARS}  RECORD_TTL_DAYS={settings.record_ttl_days}",
        f"used_memory: {before} -> {after} bytes: +{(after - before) / 1024:.0f} KiB"
        f" ({(after - before) / max(1, args.articles) / 1024:.2f} KiB per article)",
        "",
        f"{'kind of key':32} {'keys':>6} {'KiB':>9} {'bytes/key':>10}  TTL",
    ]
    for name, _ in KINDS:
        if name in kinds:
            entry = kinds[name]
            lines.append(
                f"{name:32} {entry['keys']:>6} {entry['bytes'] / 1024:>9.0f} {entry['bytes'] // entry['keys']:>10}"
                f"  {', '.join(sorted(entry['ttl']))}"
            )
    lines.append(
        f"\nsample record: body {len(sample.body)} chars, key {ClassificationRecord.key_for(sample.record_id)}"
    )
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.write_text(report + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
