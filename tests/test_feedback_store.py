"""The feedback store on a real redis-server: replace on change, counts, export, and survival of a restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from common.exceptions import ClassificationNotFoundError, UnknownCategoryError
from store import classifications, feedback
from store.answers import FeedbackAnswer
from store.classifications import ClassificationRecord
from store.feedback import FeedbackStore
from store.queues import classify_queue
from store.trust import TrustPolicy
from testkit.fake_slack import FakeSlack
from testkit.inprocess_worker import enqueue_classify, install_runtime, run_burst, worker_settings
from testkit.redis_server import RedisServer
from training.examples import load_extra_examples

# The users of these tests are editors: their corrections count as they are (store.trust).
TRUSTED = TrustPolicy(frozenset({"U1", "U2", "U3"}), daily_cap=100)


def put_classification(
    conn: redis.Redis, record_id: str, slug: str, body: str = "本文です。", title: str = "見出し"
) -> None:
    record = ClassificationRecord(
        record_id=record_id, title=title, body=body, url="", slug=slug, model_version="v1", channel="C1"
    )
    classifications.put_classification(conn, record)


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
    answer = store.of_user("r1", "U1")
    assert answer is not None
    assert (answer.predicted, answer.chosen, answer.model_version) == ("sports-watch", "topic-news", "v1")

    with pytest.raises(UnknownCategoryError):
        store.record("r1", "U1", "not-a-slug")
    with pytest.raises(ClassificationNotFoundError):
        store.record("missing", "U1", "smax")

    summary = store.export_corrections(tmp_path / "extra.jsonl", TRUSTED)
    lines = [json.loads(line) for line in (tmp_path / "extra.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(lines, key=lambda x: x["slug"]) == [
        {"title": "見出し", "body": "美容の記事", "slug": "dokujo-tsushin"},
        {"title": "見出し", "body": "試合の記事", "slug": "topic-news"},
    ]
    assert (summary.written, summary.skipped) == (2, 0)


def test_export_skips_unknown_slugs_empty_text_and_missing_records(redis_conn: redis.Redis, tmp_path: Path) -> None:
    store = FeedbackStore(redis_conn)
    put_classification(redis_conn, "r1", "smax", "   ", title="")
    store.record("r1", "U1", "peachy")  # no text to learn from
    # An answer stored by an older release with a slug that no longer exists.
    put_classification(redis_conn, "r2", "smax", "本文")
    feedback.put_feedback(redis_conn, FeedbackAnswer("r2", "U1", "smax", "old-category", "v0", 1.0))
    # An answer whose classification record is gone.
    feedback.put_feedback(redis_conn, FeedbackAnswer("r3", "U1", "smax", "peachy", "v0", 1.0))
    summary = store.export_corrections(tmp_path / "extra.jsonl", TRUSTED)
    assert (summary.written, summary.skipped) == (0, 3)


def test_records_of_the_earlier_layout_still_read_with_the_title_once(redis_conn: redis.Redis) -> None:
    """An earlier release kept ``text`` (title and body together) beside ``title``; AOF keeps such records."""
    key = ClassificationRecord.key_for("old")
    redis_conn.hset(key, mapping={"text": "見出し\n本文です。", "title": "見出し", "slug": "smax", "ts": "1.5"})
    record = classifications.get_classification(redis_conn, "old")
    assert (record.title, record.body, record.slug, record.ts) == ("見出し", "本文です。", "smax", "1.5")
    assert record.article.text == "見出し\n本文です。"


def test_a_correction_trains_on_the_article_as_the_worker_classified_it_title_once(
    redis_server: RedisServer, redis_conn: redis.Redis, fake_slack: FakeSlack, model_registry: Path, tmp_path: Path
) -> None:
    """Worker → record → feedback → export → training examples: the title is not repeated in front of the body."""
    install_runtime(worker_settings(redis_server.url, fake_slack.api_url, model_registry), redis_conn)
    title, body = "新型スマホ発表", "新しいスマートフォンの発表会が開かれ、料金プランが明らかになった。\n詳細は後日。"
    job = enqueue_classify(classify_queue(redis_conn), f"<@UBOT> {title}\n{body}", 1)
    run_burst(redis_conn)
    store = FeedbackStore(redis_conn)
    predicted = store.classification(job.id).slug
    chosen = "smax" if predicted != "smax" else "peachy"
    store.record(job.id, "U1", chosen)

    summary = store.export_corrections(tmp_path / "extra.jsonl", TRUSTED)
    assert summary.written == 1
    extra = load_extra_examples(summary.path)
    assert [(a.slug, a.title, a.body) for a in extra.articles] == [(chosen, title, body)]
