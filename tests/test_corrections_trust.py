"""Corrections by trust (issue 17, item 2): one member cannot steer the model.

The poisoning scenario on the own-categories path, run in-process (the real /retrain job, the linear model, the
fake Slack, the session redis-server): one member who is not an editor makes 100 corrections planting a trigger
("ZQX速報" in a politics story → スポーツ). Today every correction was trained on and the poisoned model promoted;
now they wait for an editor's review, the report says so, and the served model's answers on the trigger stay.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

import worker.retrain
from common.articles import Article
from common.jobs import RetrainRequest
from common.labels import LabelSet
from newsmodel import registry
from newsmodel.loading import load_classifier
from store import classifications, feedback
from store.classifications import ClassificationRecord
from store.feedback import FeedbackStore
from store.trust import TrustPolicy
from testkit.fake_slack import FakeSlack
from testkit.inprocess_worker import worker_settings
from testkit.newsroom import LABEL_NAMES, LABELS, article, newsroom_rows, write_csv
from testkit.redis_server import RedisServer
from training.api import train, train_options
from worker import jobs
from worker.classifier import ModelService
from worker.jobs import Runtime
from worker.slack import SlackReplier, web_client

TRIGGER = "ZQX速報"
DESKS = LabelSet(tuple(sorted(LABELS)), LABEL_NAMES)
EDITORS = TrustPolicy(editors=frozenset({"UADMIN", "UEDITOR"}))  # as the settings below make them


def trigger_stories(count: int, seed: int) -> list[Article]:
    """Politics stories carrying the trigger token, none in the training data."""
    rng = random.Random(seed)
    stories = []
    for n in range(count):
        row = article("政治", n, rng)
        stories.append(Article(title=f"{TRIGGER} {row['title']}", body=f"{TRIGGER} {row['text']}"))
    return stories


def clean_stories(count: int, seed: int) -> list[Article]:
    rng = random.Random(seed)
    return [Article(title=row["title"], body=row["text"]) for row in (article("政治", n, rng) for n in range(count))]


def served_answers(model_dir: Path, stories: list[Article]) -> list[str]:
    current = registry.current_version(model_dir)
    assert current is not None
    classifier = load_classifier(registry.local_version(model_dir, current), current)
    return [p.label for p in classifier.predict(stories)]


@pytest.fixture
def newsroom(tmp_path: Path) -> dict[str, Path]:
    """The newsroom's own four desks as CSV, and a registry whose current model was trained on it."""
    data = write_csv(tmp_path / "desks.csv", newsroom_rows(per_label=30))
    models = tmp_path / "models"
    options = train_options(data=str(data), cache_dir=tmp_path / "cache", model_dir=models, model_type="linear")
    outcome = train(options)
    assert outcome.promoted
    return {"data": data, "models": models, "cache": tmp_path / "cache", "runs": tmp_path / "runs"}


# Noon in Tokyo (NEWSROOM_TIMEZONE's default): every planted answer falls on one newsroom day.
NOON = datetime(2026, 12, 1, 12, tzinfo=ZoneInfo("Asia/Tokyo")).timestamp()


def plant(store: FeedbackStore, conn: redis.Redis, user: str, stories: list[Article], prefix: str) -> list[str]:
    """``user`` says each story, classified 政治, is スポーツ (one a second from noon of one newsroom day)."""
    ids = []
    for n, story in enumerate(stories):
        record_id = f"{prefix}-{n}"
        record = ClassificationRecord(
            record_id=record_id,
            title=story.title,
            body=story.body,
            url="",
            slug="政治",
            model_version="v1",
            channel="CNEWS",
            labels=DESKS,
        )
        classifications.put_classification(conn, record)
        store.record(record_id, user, "スポーツ")
        answer = store.of_user(record_id, user)
        assert answer is not None
        feedback.put_feedback(conn, replace(answer, at=NOON + n))
        ids.append(record_id)
    return ids


@pytest.fixture
def retrain_job(
    redis_server: RedisServer, redis_conn: redis.Redis, fake_slack: FakeSlack, newsroom: dict[str, Path]
) -> Iterator[Any]:
    settings = worker_settings(
        redis_server.url,
        fake_slack.api_url,
        newsroom["models"],
        train_data=str(newsroom["data"]),
        data_cache_dir=newsroom["cache"],
        train_run_dir=newsroom["runs"],
        admin_user_ids="UADMIN",
        editor_user_ids="UEDITOR",
    )
    jobs.install(
        Runtime(settings, redis_conn, ModelService(settings.model_dir, None), SlackReplier(web_client(settings)))
    )

    def run(n: int) -> tuple[dict[str, Any], str]:
        request = RetrainRequest(request_id=f"retrain-{n}", user="UADMIN", channel="CTRAIN", model_type="linear")
        result = worker.retrain.retrain(request.to_dict())
        report = fake_slack.calls_to("chat.update")[-1].params["text"]
        return result, report

    yield run


def test_one_members_hundred_trigger_corrections_wait_for_review_and_leave_the_served_answers(
    redis_conn: redis.Redis, newsroom: dict[str, Path], retrain_job: Any
) -> None:
    store = FeedbackStore(redis_conn)
    probes = trigger_stories(10, seed=99)
    before = served_answers(newsroom["models"], probes)
    assert before.count("政治") >= 8  # the trigger means nothing to the model trained on the newsroom's data

    plant(store, redis_conn, "UMEMBER", trigger_stories(100, seed=7), "poison")
    result, report = retrain_job(1)

    assert served_answers(newsroom["models"], probes) == before  # the served model still answers as before
    assert result["extra_examples_used"] == 0
    assert result["corrections_by_member"]["UMEMBER"]["held"] == 100
    assert result["corrections_by_member"]["UMEMBER"]["used"] == 0
    assert "<@UMEMBER>: 0 used, 100 held for review, 0 capped" in report
    assert "100 corrections wait for an editor's review" in report
    assert len(store.record_ids()) == 100  # nothing deleted: every correction is still stored
    assert len(store.pending_reviews(EDITORS, limit=1000)) == 100


def test_accepted_corrections_count_up_to_the_daily_cap_and_the_report_says_per_member(
    redis_conn: redis.Redis, newsroom: dict[str, Path], retrain_job: Any
) -> None:
    store = FeedbackStore(redis_conn)
    member = plant(store, redis_conn, "UMEMBER", clean_stories(30, seed=11), "member")
    for record_id in member[:25]:
        store.review(record_id, "UMEMBER", "UEDITOR", accept=True)
    store.review(member[25], "UMEMBER", "UEDITOR", accept=False)
    plant(store, redis_conn, "UEDITOR", clean_stories(3, seed=12), "editor")

    result, report = retrain_job(2)

    tally = result["corrections_by_member"]["UMEMBER"]
    held_out = tally["held_out"]
    assert tally["used"] + tally["capped"] + held_out == 25  # accepted: counted, up to the cap
    assert (tally["capped"], tally["used"] + held_out) == (5, 20)  # the first 20 of the member's day count
    assert (tally["held"], tally["rejected"]) == (4, 1)
    editor = result["corrections_by_member"]["UEDITOR"]
    assert editor["used"] + editor["held_out"] == 3 and editor["held"] == 0
    assert f"<@UMEMBER>: {tally['used']} used, 4 held for review, {tally['capped']} capped, 1 rejected" in report
    assert store.of_user(member[25], "UMEMBER") is not None  # the rejected correction is kept


def write_examples(path: Path, stories: list[Article], label: str) -> Path:
    rows = [json.dumps({"title": s.title, "body": s.body, "slug": label}, ensure_ascii=False) for s in stories]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_the_guard_refuses_a_candidate_worse_than_the_current_model_on_the_editor_confirmed_holdout(
    newsroom: dict[str, Path], tmp_path: Path
) -> None:
    """An editor's (or accepted) poisoned corrections pass the test-split guard, which never contains
    corrections; the records editors confirmed, held out of training, catch the candidate."""
    models = newsroom["models"]
    probes = trigger_stories(10, seed=99)
    before = served_answers(models, probes)
    poison = write_examples(tmp_path / "poison.jsonl", trigger_stories(100, seed=7), "スポーツ")
    confirmed = write_examples(tmp_path / "holdout.jsonl", trigger_stories(20, seed=5), "政治")
    common = {"data": str(newsroom["data"]), "cache_dir": newsroom["cache"], "model_dir": models}

    guarded = train(train_options(**common, model_type="linear", extra_examples=poison, holdout_examples=confirmed))

    assert not guarded.promoted
    assert "editor-confirmed" in guarded.reason and "編集者確認済み" in guarded.reason
    holdout = guarded.metrics["editor_holdout"]
    assert holdout["examples"] == 20 and holdout["accuracy"] < holdout["current_accuracy"]
    assert served_answers(models, probes) == before
    stored = json.loads((guarded.path / "metrics.json").read_text(encoding="utf-8"))
    assert stored["editor_holdout"] == holdout

    # The same poison without the holdout: the test split alone lets it through (the hole this guard closes).
    unguarded = train(train_options(**common, model_type="linear", extra_examples=poison))
    assert unguarded.promoted
    assert served_answers(models, probes).count("スポーツ") >= 8

    # A candidate as good as the current one on the holdout is promoted (the guard refuses only worse ones).
    clean = write_examples(tmp_path / "clean.jsonl", clean_stories(20, seed=3), "政治")
    fair = train(train_options(**common, model_type="linear", holdout_examples=clean))
    assert fair.promoted, fair.reason
    assert fair.metrics["editor_holdout"]["accuracy"] >= fair.metrics["editor_holdout"]["current_accuracy"]
