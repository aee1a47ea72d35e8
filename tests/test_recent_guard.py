"""Issue 19, item 7: beside the fixed test split, a candidate is scored on the most recent editor-labelled records
(labelled after its training data, never trained on) when there are at least RECENT_MIN_EXAMPLES of them; the
promotion guard refuses a candidate clearly worse on them than the current model."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from store import classifications
from store.answers import FeedbackAnswer
from store.classifications import ClassificationRecord
from store.feedback import FeedbackStore, put_feedback
from store.trust import TrustPolicy, recent_count
from tests.test_corrections_trust import clean_stories, newsroom, served_answers, trigger_stories, write_examples
from training.api import RECENT_MIN_EXAMPLES, recent_margin, train, train_options
from ui.retrain import editor_sets_lines

__all__ = ["newsroom"]  # the fixture: a registry whose current model was trained on the newsroom's desks


def test_the_guard_refuses_a_candidate_clearly_worse_on_the_most_recent_editor_labels(
    newsroom: dict[str, Path], tmp_path: Path
) -> None:
    models = newsroom["models"]
    probes = trigger_stories(10, seed=99)
    before = served_answers(models, probes)
    poison = write_examples(tmp_path / "poison.jsonl", trigger_stories(100, seed=7), "スポーツ")
    common = {"data": str(newsroom["data"]), "cache_dir": newsroom["cache"], "model_dir": models}

    # Too few recent labels (under RECENT_MIN_EXAMPLES): reported with their count, never deciding.
    few = write_examples(tmp_path / "few.jsonl", trigger_stories(RECENT_MIN_EXAMPLES - 1, seed=5), "政治")
    unjudged = train(train_options(**common, model_type="linear", extra_examples=poison, recent_examples=few))
    assert unjudged.metrics["recent_editor_labels"] == {
        "examples": RECENT_MIN_EXAMPLES - 1,
        "used": False,
        "min_examples": RECENT_MIN_EXAMPLES,
    }
    assert unjudged.promoted, unjudged.reason

    # Enough of them: the candidate that learnt the poison is clearly worse there, and is refused.
    models_now = served_answers(models, probes)
    recent = write_examples(tmp_path / "recent.jsonl", trigger_stories(40, seed=5), "スポーツ")
    # (the current model now says スポーツ for the trigger: a candidate trained without the poison disagrees)
    assert models_now.count("スポーツ") >= 8 and before != models_now
    guarded = train(train_options(**common, model_type="linear", recent_examples=recent))
    scored = guarded.metrics["recent_editor_labels"]
    assert scored["used"] and scored["examples"] == 40
    assert scored["accuracy"] < scored["current_accuracy"] - recent_margin(scored["current_accuracy"], 40)
    assert not guarded.promoted
    assert "most recent editor-labelled" in guarded.reason and "編集者のラベル" in guarded.reason
    assert served_answers(models, probes) == models_now
    stored = json.loads((guarded.path / "metrics.json").read_text(encoding="utf-8"))
    assert stored["recent_editor_labels"] == scored

    # A candidate as good as the current one on them is promoted: only a clear gap refuses.
    clean = write_examples(tmp_path / "clean.jsonl", clean_stories(40, seed=3), "政治")
    fair = train(train_options(**common, model_type="linear", recent_examples=clean))
    assert fair.promoted, fair.reason
    assert fair.metrics["recent_editor_labels"]["used"]


def _labelled(conn: redis.Redis, count: int) -> None:
    """``count`` records an editor corrected (one in three) or confirmed, the n-th answered at time n."""
    for n in range(count):
        record_id = f"rec{n:04d}"
        classifications.put_classification(
            conn,
            ClassificationRecord(record_id, f"見出し {n}", f"本文 {n} です。", "", "sports-watch", "v1", "C1"),
        )
        chosen = "topic-news" if n % 3 == 0 else "sports-watch"
        put_feedback(conn, FeedbackAnswer(record_id, "UEDITOR", "sports-watch", chosen, "v1", float(n)))


def _ids(path: Path) -> list[str]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [row["title"].removeprefix("見出し ") for row in rows]


def test_the_export_holds_out_the_newest_editor_labels_when_there_are_enough(
    redis_conn: redis.Redis, tmp_path: Path
) -> None:
    policy = TrustPolicy(editors=frozenset({"UEDITOR"}), daily_cap=1000, holdout_share=0.2)
    _labelled(redis_conn, 150)  # 20 % of 150: the 30 newest
    paths = tmp_path / "c.jsonl", tmp_path / "h.jsonl", tmp_path / "r.jsonl"
    summary = FeedbackStore(redis_conn).export_corrections(paths[0], policy, paths[1], paths[2])
    assert summary.recent == 30 == recent_count(150)
    assert sorted(int(n) for n in _ids(paths[2])) == list(range(120, 150))  # the newest, by when labelled
    trained_on, held_out = set(_ids(paths[0])), set(_ids(paths[1]))
    assert not (trained_on | held_out) & set(_ids(paths[2]))  # never trained on, never in the other holdout
    assert summary.held_out > 0 and summary.written > 0

    # Fewer labelled records (20 % under 30): none held out for recency, the export as before.
    redis_conn.flushall()
    policy = TrustPolicy(editors=frozenset({"UEDITOR"}), daily_cap=1000, holdout_share=0.2)
    _labelled(redis_conn, 100)
    summary = FeedbackStore(redis_conn).export_corrections(paths[0], policy, paths[1], paths[2])
    assert summary.recent == 0 == recent_count(100) and _ids(paths[2]) == []


def test_the_report_shows_both_sets_beside_the_test_split() -> None:
    metrics = {
        "editor_holdout": {"examples": 20, "accuracy": 0.9, "current_accuracy": 0.95, "current_version": "v1"},
        "recent_editor_labels": {
            "examples": 40,
            "accuracy": 0.5,
            "current_accuracy": 0.9,
            "current_version": "v1",
            "used": True,
        },
    }
    lines = editor_sets_lines(metrics)
    assert lines[0].startswith("編集者確認済みの保留分 / Editor-confirmed holdout: 20") and "accuracy 90.0%" in lines[0]
    assert "Most recent editor labels: 40" in lines[1] and "accuracy 50.0% (現在 / current `v1` 90.0%)" in lines[1]
    few = {"recent_editor_labels": {"examples": 12, "used": False, "min_examples": 30}}
    (line,) = editor_sets_lines(few)
    assert line.startswith("最新の編集者ラベル / Most recent editor labels: 12 件") and "too few (under 30)" in line
