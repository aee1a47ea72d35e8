"""Queue overhead: 20 classify jobs through the product's worker vs the RQ-tutorial way, side by side.

- product: ``python -m worker --burst`` (model loaded once at start, non-forking, batching), with the jobs
  already queued; timed from the first job's start to the last job's end (RQ's own timestamps), replies
  going to a local fake Slack over HTTP.
- naive: the default forking ``rq worker --burst`` running a job function that imports transformers, loads
  the model and classifies inside the job (what RQ tutorials do), timed the same way.
- bare: the model's forward pass alone on the same articles, one at a time, in this process.

    python -m benchmarks.queue_overhead [--jobs 20] [--naive-jobs 20] [--cache /tmp/newsbot-bench]

Targets: product >= 5x faster than naive per job, and its time per job within 15% of the bare forward time.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from rq import Queue
from rq.job import Job

from common.jobs import CLASSIFY_JOB, ClassifyRequest
from common.queues import SERIALIZER
from tests.support.fake_slack import FakeSlack
from tests.support.processes import REPO_ROOT, product_env
from tests.support.redis_server import RedisServer

NAIVE_JOB = "benchmarks.queue_overhead.naive_classify"


def naive_classify(model_dir: str, title: str, body: str) -> str:
    """The tutorial way: everything inside the job, in a freshly forked work horse."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    inputs = tokenizer(title, body, truncation="only_second", max_length=512, return_tensors="pt")
    logits = model(**inputs).logits
    return str(model.config.id2label[int(logits.argmax())])


def span_s(conn: redis.Redis, ids: list[str]) -> float:
    jobs = [Job.fetch(i, connection=conn, serializer=SERIALIZER) for i in ids]
    assert all(j.get_status() == "finished" for j in jobs), [j.get_status() for j in jobs]
    starts = [j.started_at for j in jobs if j.started_at]
    ends = [j.ended_at for j in jobs if j.ended_at]
    return (max(ends) - min(starts)).total_seconds()


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

    from benchmarks.bert_base_random import build, sample_articles

    model_dir = build(args.cache / "bert-base-ja-random", sample_articles(2000, seed=1))
    articles = sample_articles(max(args.jobs, args.naive_jobs), seed=4)
    pairs = [(a.title, a.body) for a in articles]

    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis").start()
        slack = FakeSlack().start()
        conn = redis.Redis.from_url(server.url)
        try:
            results: dict[str, Any] = {}
            # -- product worker ----------------------------------------------------------------
            queue = Queue("classify", connection=conn, serializer=SERIALIZER)
            ids = []
            for n, (title, body) in enumerate(pairs[: args.jobs]):
                request = ClassifyRequest(request_id=f"b{n}", text=f"{title}\n{body}", channel="C1", thread_ts=f"1.{n}")
                ids.append(queue.enqueue_call(CLASSIFY_JOB, args=(request.to_dict(),), result_ttl=600).id)
            env = product_env(REDIS_URL=server.url, SLACK_API_URL=slack.api_url, MODEL_PATH=str(model_dir))
            wall = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "worker", "--burst"],
                env=env,
                cwd=tmp,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            results["product"] = {"span": span_s(conn, ids), "n": len(ids), "wall": time.perf_counter() - wall}
            # -- naive forking rq worker -------------------------------------------------------------
            naive = Queue("naive", connection=conn, serializer=SERIALIZER)
            naive_ids = [
                naive.enqueue_call(NAIVE_JOB, args=(str(model_dir), t, b), result_ttl=600, timeout=600).id
                for t, b in pairs[: args.naive_jobs]
            ]
            naive_env = {**env, "PYTHONPATH": str(REPO_ROOT)}
            wall = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "rq.cli",
                    "worker",
                    "--burst",
                    "-u",
                    server.url,
                    "-S",
                    "rq.serializers.JSONSerializer",
                    "naive",
                ],
                env=naive_env,
                cwd=tmp,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            results["naive"] = {
                "span": span_s(conn, naive_ids),
                "n": len(naive_ids),
                "wall": time.perf_counter() - wall,
            }
        finally:
            slack.stop()
            server.stop()

    bare = bare_forward_s(model_dir, pairs[: args.jobs])
    product = results["product"]["span"] / results["product"]["n"]
    naive_per = results["naive"]["span"] / results["naive"]["n"]
    print(f"machine: {platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores")
    print("bert-base-japanese-v3 architecture (random weights), real livedoor articles, max 512 tokens")
    print(f"{'path':28s} {'jobs':>5s} {'s/job':>8s} {'total s':>8s}")
    print(
        f"{'product worker (burst)':28s} {results['product']['n']:5d} {product:8.3f} {results['product']['span']:8.1f}"
    )
    print(
        f"{'naive forking rq worker':28s} {results['naive']['n']:5d} {naive_per:8.3f} {results['naive']['span']:8.1f}"
    )
    print(f"{'bare forward, one article':28s} {args.jobs:5d} {bare:8.3f}")
    print(f"\nproduct vs naive: {naive_per / product:.1f}x faster per job (target >= 5x)")
    print(f"product per job vs bare forward: {product / bare:.2f}x (target <= 1.15x)")


if __name__ == "__main__":
    main()
