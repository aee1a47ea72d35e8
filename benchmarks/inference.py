"""Inference benchmark: the worker's classify path against transformers ``pipeline()``, plus CPU speed-ups.

Side by side in one run, on real livedoor articles at 512 tokens, with a random-weight model of the
bert-base-japanese-v3 architecture whose head is a linear probe (see ``bert_base_random``), so top-1
agreement is measured on a model with real margins. Each variant runs in its own process (clean peak memory):

- ``worker``      the worker's path (ModelService → BertClassifier), one article per call, fp32
- ``worker-b8``   the same, eight articles per call (what batching does under a burst)
- ``pipeline``    ``pipeline("text-classification", truncation=True, max_length=512)``, one article per call
- ``int8``        the worker's path with torch dynamic int8 quantisation of the Linear layers
- ``len256``      the worker's path at max_length 256
- on CUDA also    ``gpu-bf16`` (bf16, or fp16 where bf16 is unsupported; GPU-sized batches, tokenisation in a
                  pool of processes overlapping the forward passes), on ``--gpu-articles`` articles, in calls of
                  four batches, timed end to end (tokenisation included)

    python -m benchmarks.inference [--articles 100] [--gpu-articles 4096] [--cache /tmp/newsbot-bench]

Prints articles/s, p50/p95 latency per call, peak RSS, top-1 agreement with ``worker``, and ratios.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import statistics
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

VARIANTS = ["worker", "worker-b8", "pipeline", "int8", "len256"]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_variant(name: str, model_dir: str, articles: list[tuple[str, str]]) -> dict[str, Any]:
    import torch

    from common.articles import Article
    from worker.classifier import ModelService, use_all_cores

    use_all_cores()
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # torch.ao.quantization's notice
    items = [Article(title=t, body=b) for t, b in articles]
    batch = 8 if name in ("worker-b8", "gpu-bf16") else 1
    peak_gpu_mb = 0.0
    slugs: list[str] = []
    latencies: list[float] = []
    if name == "pipeline":
        from transformers import pipeline

        classify = pipeline("text-classification", model=model_dir, tokenizer=model_dir, device="cpu")
        classify(items[0].text, truncation=True, max_length=512)  # warm-up
        for item in items:
            started = time.perf_counter()
            out = classify(item.text, truncation=True, max_length=512)
            latencies.append(time.perf_counter() - started)
            slugs.append(out[0]["label"])
    else:
        device = "cuda" if name == "gpu-bf16" else "cpu"
        service = ModelService(
            Path("unused"),
            Path(model_dir),
            device,
            max_length=256 if name == "len256" else 512,
            batch_size=batch,
        )
        service.load()
        classifier: Any = service._classifier
        if name == "int8":
            classifier.model = torch.ao.quantization.quantize_dynamic(
                classifier.model, {torch.nn.Linear}, dtype=torch.qint8
            )
        if name == "gpu-bf16":
            batch = 4 * classifier.batch_size  # several chunks per call: tokenisation overlaps the forward passes
        service.predict(items[:batch])  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        for start in range(0, len(items), batch):
            began = time.perf_counter()
            predictions, _served_by = service.predict(items[start : start + batch])
            latencies.append(time.perf_counter() - began)
            slugs.extend(p.slug for p in predictions)
        if device == "cuda":
            peak_gpu_mb = torch.cuda.max_memory_allocated() / 2**20
        service.stop()
    total = sum(latencies)
    return {
        "name": name,
        "articles_per_s": len(items) / total,
        "p50_s": statistics.median(latencies),
        "p95_s": _percentile(latencies, 0.95),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mb": peak_gpu_mb,
        "slugs": slugs,
        "per_call": batch,
        "articles": len(items),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=100, help="articles measured per CPU variant")
    parser.add_argument("--gpu-articles", type=int, default=4096, help="articles measured on CUDA")
    parser.add_argument("--probe-articles", type=int, default=270, help="articles the linear-probe head is fitted on")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/newsbot-bench"))
    parser.add_argument("--variants", nargs="+", default=None)
    args = parser.parse_args()

    import torch

    from benchmarks.bert_base_random import build, sample_articles, train_head

    started = time.perf_counter()
    vocab_articles = sample_articles(2000, seed=1)
    model_dir = build(args.cache / "bert-base-ja-random", vocab_articles)
    train_head(model_dir, sample_articles(args.probe_articles, seed=2))
    gpu = torch.cuda.is_available()
    measured = sample_articles(max(args.articles, args.gpu_articles if gpu else 0), seed=3)
    print(f"model ready in {time.perf_counter() - started:.0f}s: {model_dir}")
    pairs = [(a.title, a.body) for a in measured]

    variants = args.variants or (VARIANTS + (["gpu-bf16"] if gpu else []))
    context = multiprocessing.get_context("spawn")
    results: dict[str, dict[str, Any]] = {}
    for name in variants:
        began = time.perf_counter()
        some = pairs if name == "gpu-bf16" else pairs[: args.articles]
        # A fresh process per variant (clean peak memory); not a daemon, so the GPU variant may start its
        # tokenizer processes.
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            results[name] = pool.submit(run_variant, name, str(model_dir), some).result()
        r = results[name]
        took = time.perf_counter() - began
        print(f"  {name:10s} done in {took:.0f}s: {r['articles_per_s']:.2f} articles/s", flush=True)

    base = results.get("worker")
    cores = len(os.sched_getaffinity(0))
    print(f"\ndate: {datetime.now(UTC).isoformat(timespec='seconds')}")
    device = torch.cuda.get_device_name() if gpu else "no GPU"
    print(f"machine: {platform.machine()}, {cores} cores, {device}, torch {torch.__version__}")
    print(f"{args.articles} real livedoor articles per CPU variant, max 512 tokens (len256: 256)")
    if gpu:
        print(f"gpu-bf16: {len(pairs)} articles; peak MB is GPU memory allocated by torch")
    print("peak MB: the variant process's peak RSS; agree: top-1 agreement with worker (fp32, 512)\n")
    header = f"{'variant':10s} {'per call':>8s} {'art/s':>7s} {'p50 s':>7s} {'p95 s':>7s} {'peak MB':>8s}"
    print(header + f" {'agree':>6s} {'speed vs worker':>15s} {'vs pipeline':>11s}")
    for name, r in results.items():
        agree = 1.0
        if base:
            common = list(zip(r["slugs"], base["slugs"], strict=False))  # gpu-bf16 runs on more articles
            agree = sum(a == b for a, b in common) / len(common)
        peak = r["peak_gpu_mb"] if r["peak_gpu_mb"] else r["peak_rss_mb"]
        speed = r["articles_per_s"] / base["articles_per_s"] if base else 1.0
        vs_pipe = r["articles_per_s"] / results["pipeline"]["articles_per_s"] if "pipeline" in results else 1.0
        print(
            f"{name:10s} {r['per_call']:8d} {r['articles_per_s']:7.2f} {r['p50_s']:7.3f} {r['p95_s']:7.3f} "
            f"{peak:8.0f} {agree:6.1%} {speed:14.2f}x {vs_pipe:10.2f}x"
        )
    print("\nA CPU speed-up is offered only at >= 1.3x the worker's fp32 path with >= 99% top-1 agreement.")


if __name__ == "__main__":
    main()
