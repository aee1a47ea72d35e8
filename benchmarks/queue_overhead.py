"""Queue overhead: 20 classify jobs through the product's worker vs the RQ-tutorial way, side by side.

Each worker is started first and left to get ready (the product's loads its model; RQ's just registers),
then the jobs are enqueued together (one burst, as when a channel gets busy) and timed from the enqueue
to the last job's end (RQ's own ``ended_at``): what users wait for, queue pick-up included.

- product: ``python -m worker`` (model loaded once at start, non-forking BatchingWorker), replies going to a
  local fake Slack over HTTP, a record per article in Redis, as in production.
- naive: the default forking ``rq worker`` running a job function that imports transformers, loads the model
  and classifies inside the job (what RQ tutorials do).
- bare: the model's forward pass alone on the same articles, one at a time, in this process (tokenised ahead).

    python -m benchmarks.queue_overhead [--jobs 20] [--naive-jobs 20] [--cache /tmp/newsbot-bench]

Targets: product >= 5x faster than naive per job, and its time per job within 15% of the bare forward time.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from rq import Queue, Worker
from rq.job import Job

from common.jobs import CLASSIFY_JOB, ClassifyRequest
from store.queues import SERIALIZER
from store.serving import ServingState
from testkit.fake_slack import FakeSlack
from testkit.processes import REPO_ROOT, Proc, product_env
from testkit.redis_server import RedisServer

NAIVE_JOB = "benchmarks.queue_overhead.naive_classify"
PRODUCT_NAME = "bench-product"


def naive_classify(model_dir: str, title: str, body: str) -> str:
    """The tutorial way: everything inside the job, in a freshly forked work horse."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    inputs = tokenizer(title, body, truncation="only_second", max_length=512, return_tensors="pt")
    logits = model(**inputs).logits
    return str(model.config.id2label[int(logits.argmax())])


def wait_until(ready: Any, proc: Proc, what: str, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited before {what}:\n{proc.log()[-4000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{proc.name}: no {what} after {timeout_s:.0f}s:\n{proc.log()[-4000:]}")
        time.sleep(0.2)


def burst(conn: redis.Redis, queue: Queue, calls: list[tuple[str, tuple[Any, ...]]], proc: Proc) -> dict[str, Any]:
    """Enqueue ``calls`` at once, wait for every job to finish; seconds from the enqueue to the last end."""
    enqueued_at = datetime.now(UTC)
    jobs = queue.enqueue_many(
        [Queue.prepare_data(func, args=args, result_ttl=600, timeout=600) for func, args in calls]
    )
    ids = [job.id for job in jobs]

    def all_done() -> bool:
        statuses = [j.get_status() for j in Job.fetch_many(ids, connection=conn, serializer=SERIALIZER) if j]
        if any(s in ("failed", "stopped", "canceled") for s in statuses):
            raise RuntimeError(f"a job did not finish: {statuses}\n{proc.log()[-4000:]}")
        return len(statuses) == len(ids) and all(s == "finished" for s in statuses)

    wait_until(all_done, proc, "end of the burst", timeout_s=900)
    done = [j for j in Job.fetch_many(ids, connection=conn, serializer=SERIALIZER) if j]
    last = max(j.ended_at for j in done if j.ended_at)
    return {"span": (last - enqueued_at).total_seconds(), "n": len(ids), "jobs": done}


def bare_forward_s(model_dir: Path, pairs: list[tuple[str, str]]) -> float:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from worker.classifier import use_all_cores

    use_all_cores()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).eval()
    inputs = [tokenizer(t, b, truncation="only_second", max_length=512, return_tensors="pt") for t, b in pairs]
    with torch.inference_mode():
        model(**inputs[0])
        started = time.perf_counter()
        for features in inputs:
            model(**features)
    return (time.perf_counter() - started) / len(inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--naive-jobs", type=int, default=20)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/newsbot-bench"))
    args = parser.parse_args()

    import torch

    from benchmarks.bert_base_random import build, sample_articles

    model_dir = build(args.cache / "bert-base-ja-random", sample_articles(2000, seed=1))
    articles = sample_articles(max(args.jobs, args.naive_jobs), seed=4)
    pairs = [(a.title, a.body) for a in articles]

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis").start()
        slack = FakeSlack().start()
        conn = redis.Redis.from_url(server.url)
        try:
            # -- product worker ----------------------------------------------------------------
            env = product_env(REDIS_URL=server.url, SLACK_API_URL=slack.api_url, MODEL_PATH=str(model_dir))
            proc = Proc("worker", ["-m", "worker", "--name", PRODUCT_NAME], env, Path(tmp))
            try:
                wait_until(lambda: conn.exists(ServingState.key_for(PRODUCT_NAME)), proc, "model loaded")
                calls = [
                    (
                        CLASSIFY_JOB,
                        (ClassifyRequest(f"b{n}", f"{t}\n{b}", channel="C1", thread_ts=f"1.{n}").to_dict(),),
                    )
                    for n, (t, b) in enumerate(pairs[: args.jobs])
                ]
                product = burst(conn, Queue("classify", connection=conn, serializer=SERIALIZER), calls, proc)
            finally:
                proc.stop()
            batches: dict[str, float] = {}  # batch id -> its model time (tokenisation + forward), ms
            for job in product.pop("jobs"):
                result = job.return_value() or {}
                batches[result["batch"]["id"]] = result["timings_ms"]["model"]
            product["batches"] = len(batches)
            product["model_s"] = sum(batches.values()) / 1000
            product["replies"] = len(slack.calls_to("chat.postMessage"))
            results["product"] = product
            # -- naive forking rq worker ---------------------------------------------------------
            naive_env = {**env, "PYTHONPATH": str(REPO_ROOT)}
            naive_queue = Queue("naive", connection=conn, serializer=SERIALIZER)
            rq_args = ["-m", "rq.cli", "worker", "-u", server.url, "-S", "rq.serializers.JSONSerializer", "naive"]
            proc = Proc("rq-worker", rq_args, naive_env, Path(tmp))
            try:
                wait_until(lambda: Worker.count(queue=naive_queue) > 0, proc, "worker registered")
                naive_calls = [(NAIVE_JOB, (str(model_dir), t, b)) for t, b in pairs[: args.naive_jobs]]
                naive = burst(conn, naive_queue, naive_calls, proc)
            finally:
                proc.stop()
            naive.pop("jobs")
            results["naive"] = naive
        finally:
            slack.stop()
            server.stop()

    bare = bare_forward_s(model_dir, pairs[: args.jobs])
    prod, naive = results["product"], results["naive"]
    product_per = prod["span"] / prod["n"]
    naive_per = naive["span"] / naive["n"]
    print(f"date: {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, torch {torch.__version__}")
    print("bert-base-japanese-v3 architecture (random weights), real livedoor articles, max 512 tokens")
    print("time: from enqueueing the burst to the last job's end (RQ ended_at); workers ready beforehand\n")
    print(f"{'path':30s} {'jobs':>5s} {'s/job':>8s} {'total s':>8s}")
    print(f"{'product worker (python -m worker)':30s} {prod['n']:5d} {product_per:8.3f} {prod['span']:8.1f}")
    print(f"{'naive forking rq worker':30s} {naive['n']:5d} {naive_per:8.3f} {naive['span']:8.1f}")
    print(f"{'bare forward, one article':30s} {args.jobs:5d} {bare:8.3f} {bare * args.jobs:8.1f}")
    print(
        f"\nproduct: {prod['batches']} batch(es), model time (tokenise + forward) {prod['model_s']:.1f} s of "
        f"{prod['span']:.1f} s; {prod['replies']} replies posted to the fake Slack"
    )
    print(f"product vs naive: {naive_per / product_per:.1f}x faster per job (target >= 5x)")
    print(f"product per job vs bare forward: {product_per / bare:.2f}x (target <= 1.15x)")


if __name__ == "__main__":
    main()
