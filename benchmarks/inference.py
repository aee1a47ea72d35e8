"""Inference benchmark: the worker's classify path against transformers ``pipeline()``, plus CPU speed-ups.

Side by side in one run, on real livedoor articles at 512 tokens, with a random-weight model of the
bert-base-japanese-v3 architecture whose head is a linear probe (see ``bert_base_random``), so top-1
agreement is measured on a model with real margins. Each variant runs in its own process (clean peak memory):

- ``worker``      the worker's path (ModelService → BertClassifier), one article per call, fp32
- ``worker-b8``   the same, eight articles per call (what batching does under a burst)
- ``pipeline``    ``pipeline("text-classification", truncation=True, max_length=512)``, one article per call
- ``int8``        the worker's path with torch dynamic int8 quantisation of the Linear layers
- ``len256``      the worker's path at max_length 256
- on CUDA also    ``gpu-bf16`` (batched, GPU-sized batches, tokenisation in a process pool)

    python -m benchmarks.inference [--articles 24] [--cache /tmp/newsbot-bench]

Prints articles/s, p50/p95 latency per call, peak RSS, top-1 agreement with ``worker``, and ratios.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import resource
import statistics
import time
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
    items = [Article(title=t, body=b) for t, b in articles]
    batch = 8 if name in ("worker-b8", "gpu-bf16") else 1
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
            batch = classifier.batch_size
        service.predict(items[:batch])  # warm-up
        for start in range(0, len(items), batch):
            began = time.perf_counter()
            predictions, _version = service.predict(items[start : start + batch])
            latencies.append(time.perf_counter() - began)
            slugs.extend(p.slug for p in predictions)
        service.stop()
    total = sum(latencies)
    return {
        "name": name,
        "articles_per_s": len(items) / total,
        "p50_s": statistics.median(latencies),
        "p95_s": _percentile(latencies, 0.95),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "slugs": slugs,
        "per_call": batch,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=24, help="articles measured per variant")
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
    measured = sample_articles(args.articles, seed=3)
    print(f"model ready in {time.perf_counter() - started:.0f}s: {model_dir}")
    pairs = [(a.title, a.body) for a in measured]

    variants = args.variants or (VARIANTS + (["gpu-bf16"] if torch.cuda.is_available() else []))
    context = multiprocessing.get_context("spawn")
    results: dict[str, dict[str, Any]] = {}
    for name in variants:
        with context.Pool(1) as pool:
            results[name] = pool.apply(run_variant, (name, str(model_dir), pairs))
        r = results[name]
        print(f"  {name:10s} done: {r['articles_per_s']:.2f} articles/s", flush=True)

    base = results.get("worker")
    cores = len(__import__("os").sched_getaffinity(0))
    print(f"\nmachine: {platform.processor() or platform.machine()}, {cores} cores, torch {torch.__version__}")
    print(f"{len(measured)} real livedoor articles, max 512 tokens (len256: 256)\n")
    header = f"{'variant':10s} {'per call':>8s} {'art/s':>7s} {'p50 s':>7s} {'p95 s':>7s} {'peak MB':>8s}"
    print(header + f" {'agree':>6s} {'speed vs worker':>15s} {'vs pipeline':>11s}")
    for name, r in results.items():
        agree = sum(a == b for a, b in zip(r["slugs"], base["slugs"], strict=True)) / len(r["slugs"]) if base else 1.0
        speed = r["articles_per_s"] / base["articles_per_s"] if base else 1.0
        vs_pipe = r["articles_per_s"] / results["pipeline"]["articles_per_s"] if "pipeline" in results else 1.0
        print(
            f"{name:10s} {r['per_call']:8d} {r['articles_per_s']:7.2f} {r['p50_s']:7.3f} {r['p95_s']:7.3f} "
            f"{r['peak_rss_mb']:8.0f} {agree:6.1%} {speed:14.2f}x {vs_pipe:10.2f}x"
        )
    print("\nA CPU speed-up is offered only at >= 1.3x the worker's fp32 path with >= 99% top-1 agreement.")


if __name__ == "__main__":
    main()
