"""The feedback store on a real redis-server: replace on change, counts, export, and survival of a restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from common.exceptions import ClassificationNotFoundError, UnknownCategoryError
from common.feedback import FeedbackStore, feedback_key
from common.jobs import classification_key


def put_classification(
    conn: redis.Redis, record_id: str, slug: str, text: str = "本文です。", title: str = "見出し"
) -> None:
    conn.hset(
        classification_key(record_id),
        mapping={
            "text": text,
            "title": title,
            "url": "",
            "slug": slug,
            "model_version": "v1",
            "channel": "C1",
            "ts": "1.000001",
            "created_at": "0",
        },
    )


def test_answers_are_replaced_counted_and_exported(redis_conn: redis.Redis, tmp_path: Path) -> None:
    store = FeedbackStore(redis_conn)
    put_classification(redis_conn, "r1", "sports-watch", "試合の記事")
    put_classification(redis_conn, "r2", "smax", "スマホの記事")
    put_classification(redis_conn, "r3", "peachy", "美容の記事")

    counts = store.record("r1", "U1", "sports-watch")
    assert (counts.confirmed, counts.corrected) == (1, 0)
    counts = store.record("r1", "U1", "topic-news")  # U1 changes their mind: replaces, never adds
    assert (counts.confirmed, counts.corrected, counts.corrections) == (0, 1, {"topic-news": 1})
    counts = store.record("r1", "U2", "topic-news")
    assert counts.corrections == {"topic-news": 2}
    store.record("r2", "U1", "smax")  # confirmed: not a correction
    store.record("r3", "U3", "dokujo-tsushin")
    feedback = store.of_user("r1", "U1")
    assert feedback is not None
    assert (feedback.predicted, feedback.chosen, feedback.model_version) == ("sports-watch", "topic-news", "v1")
    assert feedback.text == "見出し\n試合の記事"

    with pytest.raises(UnknownCategoryError):
        store.record("r1", "U1", "not-a-slug")
    with pytest.raises(ClassificationNotFoundError):
        store.record("missing", "U1", "smax")

    summary = store.export_corrections(tmp_path / "extra.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "extra.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(lines, key=lambda x: x["slug"]) == [
        {"text": "見出し\n美容の記事", "slug": "dokujo-tsushin"},
        {"text": "見出し\n試合の記事", "slug": "topic-news"},
    ]
    assert (summary.written, summary.skipped) == (2, 0)


def test_export_skips_unknown_slugs_and_empty_text(redis_conn: redis.Redis, tmp_path: Path) -> None:
    store = FeedbackStore(redis_conn)
    put_classification(redis_conn, "r1", "smax", "   ", title="")
    store.record("r1", "U1", "peachy")  # no text to learn from
    # An answer stored by an older release with a slug that no longer exists.
    redis_conn.hset(
        feedback_key("r2"),
        "U1",
        json.dumps(
            {
                "record_id": "r2",
                "user": "U1",
                "predicted": "smax",
                "chosen": "old-category",
                "text": "本文",
                "model_version": "v0",
                "at": 1.0,
            }
        ),
    )
    redis_conn.sadd("newsbot:feedback:index", "r2")
    summary = store.export_corrections(tmp_path / "extra.jsonl")
    assert (summary.written, summary.skipped) == (0, 2)
