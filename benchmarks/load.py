"""Load run: a burst of signed mention events against the whole product, on loopback only.

Starts a private redis-server, the local fake Slack Web API, the bot in HTTP mode and one classify
worker, then fires N signed ``app_mention`` events from several concurrent clients and waits for every
reply. It reports acks (all within 3 s? p99 ack latency), replies delivered (exactly N, duplicates, lost),
p50/p95/p99 time from event to reply, and throughput — for the batched worker and, side by side in the
same run, for the unbatched path (CLASSIFY_BATCH_SIZE=1).

    python -m benchmarks.load [--events 500] [--clients 8] [--model DIR] [--timeout 600]

Without --model it uses a tiny random-weight BERT built from test texts (the product's overhead then
dominates); pass a save_pretrained folder for real-model figures. Bounded: every phase has a deadline.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from testkit.fake_slack import FakeSlack
from testkit.processes import Proc, product_env, seed_registry, start_bot, start_worker
from testkit.redis_server import RedisServer, free_port
from testkit.samples import all_texts
from testkit.signing import event_body, mention_event, signed_json_headers

SECRET = "load-signing-secret"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run_burst(
    label: str, *, events: int, clients: int, model: Path, batch_size: int, timeout: float, work: Path
) -> dict[str, Any]:
    redis_server = RedisServer(work / f"redis-{label}").start()
    fake = FakeSlack().start()
    registry = work / f"models-{label}"
    # A copy, not a symlink: a version folder leading out of MODEL_DIR is refused (docs/guarantees.md).
    seed_registry(registry, model, "bench")
    env = product_env(
        REDIS_URL=redis_server.url,
        SLACK_API_URL=fake.api_url,
        MODEL_DIR=str(registry),
        SLACK_SIGNING_SECRET=SECRET,
        CLASSIFY_BATCH_SIZE=str(batch_size),
        LOG_LEVEL="WARNING",
        # Every event comes from one user (ULOAD) but stands for a newsroom's many: no per-member limit here.
        MEMBER_RATE_PER_MINUTE="0",
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}/slack/events"
    procs: list[Proc] = []
    texts = all_texts()
    sent_at: dict[str, float] = {}
    ack_latency: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    try:
        procs.append(start_worker(env, work / f"run-{label}"))
        procs.append(start_bot(env, port, work / f"run-{label}"))

        def fire(i: int, client: httpx.Client) -> None:
            ts = f"{1_700_000_000 + i}.{i:06d}"
            event = mention_event(ts, texts[i % len(texts)], channel="CLOAD", user="ULOAD")
            body = event_body(event, event_id=f"EvLoad{label}{i}")
            headers = signed_json_headers(body, SECRET)
            start = time.perf_counter()
            with lock:
                sent_at[ts] = time.time()
            response = client.post(url, content=body, headers=headers, timeout=10)
            with lock:
                ack_latency.append(time.perf_counter() - start)
                statuses[response.status_code] += 1

        started = time.time()
        with ThreadPoolExecutor(clients) as pool:
            http_clients = [httpx.Client() for _ in range(clients)]
            futures = [pool.submit(fire, i, http_clients[i % clients]) for i in range(events)]
            for f in futures:
                f.result()
            for c in http_clients:
                c.close()
        acked = time.time()

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(fake.calls_to("chat.postMessage")) < events:
            time.sleep(0.2)
        time.sleep(2.0)  # let any duplicate show itself
        posts = fake.calls_to("chat.postMessage")
        per_thread = Counter(p.params.get("thread_ts") for p in posts)
        reply_latency = [p.at - sent_at[t] for p in posts if (t := p.params.get("thread_ts")) in sent_at]
        finished = max((p.at for p in posts), default=time.time())
        return {
            "label": label,
            "batch_size": batch_size,
            "events": events,
            "acked_2xx": sum(n for s, n in statuses.items() if 200 <= s < 300),
            "ack_within_3s": sum(1 for x in ack_latency if x < 3.0),
            "ack_p50_ms": percentile(ack_latency, 50) * 1000,
            "ack_p99_ms": percentile(ack_latency, 99) * 1000,
            "replies": len(posts),
            "distinct_threads_answered": len(per_thread),
            "duplicates": sum(n - 1 for n in per_thread.values() if n > 1),
            "lost": events - len(per_thread),
            "reply_p50_s": percentile(reply_latency, 50),
            "reply_p95_s": percentile(reply_latency, 95),
            "reply_p99_s": percentile(reply_latency, 99),
            "burst_s": acked - started,
            "throughput_per_s": len(per_thread) / max(1e-9, finished - started),
        }
    finally:
        for proc in procs:
            proc.stop()
        fake.stop()
        redis_server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32, help="CLASSIFY_BATCH_SIZE of the batched run")
    parser.add_argument("--model", type=Path, default=None, help="save_pretrained folder (default: tiny random BERT)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for all replies, per run")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="newsbot-load-") as tmp:
        work = Path(tmp)
        model = args.model
        if model is None:
            from testkit.tiny_bert import build_tiny_bert

            model = build_tiny_bert(work / "tiny-bert", all_texts())
        results = [
            run_burst(
                "batched",
                events=args.events,
                clients=args.clients,
                model=model,
                batch_size=args.batch_size,
                timeout=args.timeout,
                work=work,
            ),
            run_burst(
                "unbatched",
                events=args.events,
                clients=args.clients,
                model=model,
                batch_size=1,
                timeout=args.timeout,
                work=work,
            ),
        ]
    print(f"machine: {platform.node()} {platform.machine()} cpus={len(__import__('os').sched_getaffinity(0))}")
    keys = list(results[0])
    width = max(len(k) for k in keys)
    print(f"{'':{width}}  {'batched':>12}  {'unbatched':>12}")
    for key in keys[1:]:
        a, b = results[0][key], results[1][key]
        fmt = (lambda v: f"{v:12.3f}") if isinstance(a, float) else (lambda v: f"{v:12}")
        print(f"{key:{width}}  {fmt(a)}  {fmt(b)}")
    ratio = results[0]["throughput_per_s"] / max(1e-9, results[1]["throughput_per_s"])
    print(f"throughput ratio batched/unbatched: {ratio:.2f}x")
    print(f"reply p50 ratio unbatched/batched: {results[1]['reply_p50_s'] / max(1e-9, results[0]['reply_p50_s']):.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    ok = all(r["lost"] == 0 and r["duplicates"] == 0 and r["ack_within_3s"] == r["events"] for r in results)
    print("guarantees held: every event acked within 3 s, answered exactly once" if ok else "GUARANTEES VIOLATED")


if __name__ == "__main__":
    main()
