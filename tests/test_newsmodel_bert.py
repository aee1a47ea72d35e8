"""The BERT classifier's serving paths on a CPU: the tokenizer pool (the GPU path) and the GPU batch sizing."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from common.articles import Article
from common.labels import SLUGS
from newsmodel.bert import BertClassifier, batch_size_for_memory, pick_device
from testkit.samples import SAMPLES


def varied_articles(count: int) -> list[Article]:
    sentences = [s for texts in SAMPLES.values() for s in texts]
    return [Article(title=f"見出し{i}", body="".join(sentences[i % 5 : i % 5 + 1 + i * 2])) for i in range(count)]


def test_the_tokenizer_pool_predicts_what_in_process_tokenising_does(tiny_model: Path) -> None:
    articles = varied_articles(9)
    plain = BertClassifier(tiny_model, device="cpu", batch_size=4)
    pooled = BertClassifier(tiny_model, device="cpu", batch_size=4, tokenizer_workers=2)
    before = set(multiprocessing.active_children())
    try:
        got = pooled.predict(articles)
        started = [p for p in multiprocessing.active_children() if p not in before]
    finally:
        pooled.close()
    assert 1 <= len(started) <= 2  # the pool's processes did the tokenising
    assert pooled.forward_passes == 3  # the pool path: chunks of batch_size in length order
    expected = plain.predict(articles)
    assert len(got) == len(expected) == 9
    for a, b in zip(got, expected, strict=True):  # in the input order, whatever the order of the passes
        assert a.slug == b.slug
        assert all(abs(a.scores[k] - b.scores[k]) < 1e-4 for k in SLUGS)
    assert len({round(p.scores[SLUGS[0]], 6) for p in expected}) > 1  # the articles do score differently


def test_gpu_batch_size_fills_half_the_free_memory_within_bounds() -> None:
    # At 512 tokens an article needs 3 × 2 bytes × (12 × 512² + 512 × 4 × 768) = 28,311,552 bytes.
    assert batch_size_for_memory(16 * 10**9, 512) == 282  # 8 GB usable / 28.3 MB
    assert batch_size_for_memory(2**30, 512) == 18
    assert batch_size_for_memory(2 * 28_311_552 * 40, 512) == 40
    assert batch_size_for_memory(2 * 28_311_552 * 40 - 1, 512) == 39
    assert batch_size_for_memory(16 * 10**9, 128) == 512  # capped
    assert batch_size_for_memory(140 * 10**9, 512, cap=1024) == 1024
    assert batch_size_for_memory(0, 512) == 8  # never below the floor
    assert batch_size_for_memory(2 * 10**9, 512, hidden=1024, heads=16) == 26  # a larger model: fewer


def test_device_is_the_one_asked_for() -> None:
    assert pick_device("cpu").type == "cpu"


def test_serving_budget_leaves_the_rest_of_the_gpu_to_a_training() -> None:
    from newsmodel.bert import serving_budget

    gib = 2**30
    # 141 GiB card, 0.5 for serving, 1 GiB of weights held: 69.5 GiB left although 140 GiB are free.
    assert serving_budget(140 * gib, 141 * gib, 1 * gib, 0.5) == int(0.5 * 141 * gib) - gib
    # A training already took most of the card: only what is free counts.
    assert serving_budget(3 * gib, 141 * gib, 1 * gib, 0.5) == 3 * gib
    # Serving already holds its whole share: nothing more (the floor batch size then applies).
    assert serving_budget(100 * gib, 100 * gib, 60 * gib, 0.5) == 0
    assert batch_size_for_memory(serving_budget(100 * gib, 100 * gib, 60 * gib, 0.5), 512) == 8
