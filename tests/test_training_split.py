"""The fixed 8:1:1 split: deterministic, stratified, kept on disk; extra examples only ever in train."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
import redis

from common.labels import SLUGS
from store import classifications
from store.classifications import ClassificationRecord
from store.feedback import FeedbackStore
from store.trust import TrustPolicy
from testkit.fake_corpus import build_text_folder
from training.corpus import CorpusArticle, load_corpus
from training.examples import load_extra_examples
from training.split import assign, fingerprint, load_or_create_split, read_split


@pytest.fixture(scope="module")
def articles(tmp_path_factory: pytest.TempPathFactory) -> list[CorpusArticle]:
    return load_corpus(build_text_folder(tmp_path_factory.mktemp("corpus"), per_class=30))


def test_split_is_stratified_8_1_1() -> None:
    counts = {"a": 870, "b": 511, "c": 864, "d": 30}
    pairs = [(f"{slug}-{i}", slug) for slug, n in counts.items() for i in range(n)]
    names = assign(pairs, seed=42)
    for slug, n in counts.items():
        got = Counter(names[f"{slug}-{i}"] for i in range(n))
        assert got["test"] == round(n / 10)
        assert got["validation"] == round(n * 2 / 10) - round(n / 10)
        assert got["train"] == n - got["test"] - got["validation"]


def test_split_depends_on_ids_and_seed_only() -> None:
    pairs = [(f"{slug}-{i}", slug) for slug in SLUGS for i in range(50)]
    shuffled = pairs[:]
    random.Random(7).shuffle(shuffled)
    assert assign(pairs, seed=42) == assign(shuffled, seed=42)
    assert assign(pairs, seed=42) != assign(pairs, seed=43)


def test_split_file_is_written_once_and_reused(articles: list[CorpusArticle], tmp_path: Path) -> None:
    path = tmp_path / "split.jsonl"
    first = load_or_create_split(articles, path, seed=42)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert {row["id"] for row in rows} == {a.id for a in articles}
    assert set(rows[0]) == {"id", "slug", "split"}  # ids only, never corpus text
    assert len(first.train) + len(first.validation) + len(first.test) == len(articles)
    assert not {a.id for a in first.test} & {a.id for a in first.train}
    # A later run with another seed still uses the file: the test articles never change.
    again = load_or_create_split(articles, path, seed=99)
    assert [a.id for a in again.test] == [a.id for a in first.test]
    assert again.test_fingerprint == first.test_fingerprint == fingerprint(a.id for a in first.test)
    assert read_split(path) == {row["id"]: row["split"] for row in rows}


def correction(conn: redis.Redis, record_id: str, title: str, body: str, chosen: str) -> None:
    """A classification stored as the worker stores it, corrected by a user as the bot records it."""
    predicted = "peachy" if chosen != "peachy" else "smax"
    record = ClassificationRecord(
        record_id=record_id, title=title, body=body, url="", slug=predicted, model_version="v1", channel="C1"
    )
    classifications.put_classification(conn, record)
    FeedbackStore(conn).record(record_id, "U1", chosen)


def test_extra_examples_skip_unknown_slugs_bad_lines_and_test_articles(
    articles: list[CorpusArticle], tmp_path: Path, redis_conn: redis.Redis
) -> None:
    split = load_or_create_split(articles, tmp_path / "split.jsonl")
    test_article = split.test[0]
    correction(redis_conn, "r1", "新しいスマホの発表会が開かれた。", "詳細は後日。", "smax")
    correction(redis_conn, "r2", "", "代表が逆転勝ち", "sports-watch")
    correction(redis_conn, "r3", test_article.title, test_article.body, test_article.slug)
    path = tmp_path / "extra.jsonl"
    assert FeedbackStore(redis_conn).export_corrections(path, TrustPolicy(frozenset({"U1"}))).written == 3
    # Lines written by hand (pasted text), and lines no export writes: all must be survived.
    lines = [
        json.dumps({"text": "家電の新製品\n冷蔵庫の新モデルが出た。", "slug": "kaden-channel"}, ensure_ascii=False),
        json.dumps({"text": "何かの記事", "slug": "no-such-category"}, ensure_ascii=False),
        "not json at all",
        json.dumps({"slug": "smax"}),
        json.dumps({"text": f"{test_article.title}\n{test_article.body}", "slug": test_article.slug}),
        "",
    ]
    path.write_text(path.read_text(encoding="utf-8") + "\n".join(lines), encoding="utf-8")
    extra = load_extra_examples(path, exclude=split.test)
    assert [(a.slug, a.title, a.body) for a in extra.articles] == [
        ("smax", "新しいスマホの発表会が開かれた。", "詳細は後日。"),
        ("sports-watch", "", "代表が逆転勝ち"),
        ("kaden-channel", "家電の新製品", "冷蔵庫の新モデルが出た。"),
    ]
    assert extra.skipped == 5  # the test article twice, the unknown slug, not JSON, no text
    assert load_extra_examples(None).articles == []
