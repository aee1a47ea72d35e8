"""The App Home's data in Redis (counters, recent lists, viewers, the served model's facts) and its Block Kit."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

from common.labels import LIVEDOOR, SLUGS
from store import activity, classifications, feedback, retraining, serving
from store.activity import HomeViewer, RecentClassification
from store.answers import FeedbackAnswer
from store.feedback import FeedbackTally
from store.newsroom import Route, Watch
from store.serving import ServingState
from store.trust import TrustPolicy
from tests.home_models import action_ids, add_linear_version, all_text, fields
from ui import blocks, home
from ui.commands import COMMANDS
from worker.classifier import ModelService

DAY = 86400.0
TOKYO = ZoneInfo("Asia/Tokyo")


# --- counters and lists -----------------------------------------------------------------------------------


def test_classifications_count_once_per_record_by_day_and_week(redis_conn: redis.Redis) -> None:
    now = time.time()
    activity.count_classifications(redis_conn, ["job1", "job2:1", "job2:2"], "U1", tz=TOKYO, at=now)
    activity.count_classifications(
        redis_conn, ["job1"], "U1", tz=TOKYO, at=now
    )  # a retried job stores its record again
    activity.count_classifications(redis_conn, ["old1"], None, tz=TOKYO, at=now - 3 * DAY)
    activity.count_classifications(redis_conn, ["older"], None, tz=TOKYO, at=now - 7 * DAY)  # outside the last 7 days
    assert activity.classified_counts(redis_conn, tz=TOKYO, at=now) == (3, 4)
    ttl = redis_conn.ttl(activity.CLASSIFIED_DAY.key_for(activity.newsroom_day(now, TOKYO)))
    assert 0 < int(ttl) <= activity.CLASSIFIED_DAY_TTL_S


def test_today_begins_at_midnight_in_the_newsrooms_time_zone_not_utc(redis_conn: redis.Redis) -> None:
    """An article at 08:30 in Tokyo is today's from 00:00 to 24:00 Tokyo time, although it is 23:30 the day
    before in UTC; at 00:30 the next Tokyo day it counts for the week only."""
    morning = datetime(2026, 12, 1, 23, 30, tzinfo=UTC).timestamp()  # 2026-12-02 08:30 in Tokyo
    activity.count_classifications(redis_conn, ["morning"], "U1", tz=TOKYO, at=morning)
    assert activity.newsroom_day(morning, TOKYO) == "2026-12-02" and activity.newsroom_day(morning, UTC) == "2026-12-01"
    ten_am = datetime(2026, 12, 2, 1, 0, tzinfo=UTC).timestamp()  # 10:00 in Tokyo, the same Tokyo day
    assert activity.classified_counts(redis_conn, tz=TOKYO, at=ten_am) == (1, 1)
    after_midnight = datetime(2026, 12, 2, 15, 30, tzinfo=UTC).timestamp()  # 2026-12-03 00:30 in Tokyo
    assert activity.classified_counts(redis_conn, tz=TOKYO, at=after_midnight) == (0, 1)
    data = home.gather(redis_conn, "U1", False, timezone="Asia/Tokyo", classify_response_type="in_channel")
    assert "calendar days in Asia/Tokyo" in all_text(home.home_view(data))


def test_each_users_recent_list_keeps_the_last_five_newest_first(redis_conn: redis.Redis) -> None:
    for n in range(7):
        record = classifications.ClassificationRecord(
            record_id=f"r{n}",
            title="" if n % 2 else f"<見出し> & {n}",
            body=f"本文 {n} " + "長い " * 40,
            url="",
            slug=SLUGS[n],
            model_version="v",
            channel="C1",
        )
        classifications.put_classification(redis_conn, record)
        activity.count_classifications(redis_conn, [record.record_id], "U1", tz=TOKYO, at=1000.0 + n)
    activity.count_classifications(redis_conn, ["other"], "U2", tz=TOKYO, at=1000.0)
    recent = activity.recent_classifications(redis_conn, "U1")
    assert [r.record_id for r in recent] == ["r6", "r5", "r4", "r3", "r2"]
    assert recent[0] == RecentClassification("r6", "<見出し> & 6", SLUGS[6], 1006.0)
    assert recent[1].title.startswith("本文 5 長い") and len(recent[1].title) == activity.RECENT_TITLE_CHARS
    assert 0 < int(redis_conn.ttl(activity.RECENT.key_for("U1"))) <= activity.RECENT_TTL_S


def test_feedback_tally_counts_each_users_latest_answer_and_corrections_since_the_last_export(
    redis_conn: redis.Redis, tmp_path: Path
) -> None:
    from store.feedback import FeedbackStore

    def answer(record: str, user: str, chosen: str, at: float) -> None:
        feedback.put_feedback(redis_conn, FeedbackAnswer(record, user, "sports-watch", chosen, "v", at))

    assert feedback.feedback_tally(redis_conn) == FeedbackTally(0, 0, 0)
    answer("r1", "U1", "sports-watch", 10.0)
    answer("r1", "U2", "peachy", 11.0)
    answer("r2", "U1", "smax", 12.0)
    assert feedback.feedback_tally(redis_conn) == FeedbackTally(correct=1, wrong=2, waiting=2)  # no training yet
    answer("r2", "U1", "sports-watch", 13.0)  # U1 changed their mind: wrong → correct
    assert feedback.feedback_tally(redis_conn) == FeedbackTally(correct=2, wrong=1, waiting=1)

    # A training takes them now (whether it uses them or they wait for review).
    FeedbackStore(redis_conn).export_corrections(tmp_path / "c.jsonl", TrustPolicy(frozenset()))
    assert feedback.feedback_tally(redis_conn) == FeedbackTally(correct=2, wrong=1, waiting=0)
    answer("r3", "U3", "peachy", time.time() + 1)
    assert feedback.feedback_tally(redis_conn) == FeedbackTally(correct=2, wrong=2, waiting=1)


def test_home_viewers_are_the_recent_ones_newest_first(redis_conn: redis.Redis) -> None:
    now = time.time()
    activity.note_home_viewer(redis_conn, HomeViewer("UOLD", "DOLD", False, now - activity.HOME_VIEWER_TTL_S - 5))
    for n in range(4):
        activity.note_home_viewer(redis_conn, HomeViewer(f"U{n}", f"D{n}", n == 0, now - 100 + n))
    assert [v.user for v in activity.home_viewers(redis_conn, at=now)] == ["U3", "U2", "U1", "U0"]
    assert [v.user for v in activity.home_viewers(redis_conn, limit=2, at=now)] == ["U3", "U2"]
    assert activity.home_viewer(redis_conn, "U0") == HomeViewer("U0", "D0", True, now - 100)
    assert activity.home_viewer(redis_conn, "UOLD") is not None  # its own key still lives, but it is not listed


# --- what a worker publishes ----------------------------------------------------------------------------------


def test_a_worker_is_listed_as_serving_before_its_watcher_thread_first_runs(
    tmp_path: Path, redis_conn: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m worker` registers with RQ right after start_watching: on a loaded machine the watcher thread may
    not have run yet, and a worker taking jobs must not be missing from `/retrain status` and App Home."""
    add_linear_version(tmp_path / "models", "20260101-000000-000aaaaaa")
    models = ModelService(tmp_path / "models", None, "cpu")
    assert models.load()
    started: list[threading.Thread] = []
    monkeypatch.setattr(threading.Thread, "start", lambda thread: started.append(thread))  # the thread never runs
    models.start_watching(redis_conn, "worker-1")
    assert [t.name for t in started] == ["model-watcher"]
    (served,) = serving.serving_states(redis_conn)
    assert (served.worker, served.version) == ("worker-1", "20260101-000000-000aaaaaa")


def test_a_worker_publishes_its_served_models_facts_and_the_versions(redis_conn: redis.Redis, tmp_path: Path) -> None:
    model_dir = tmp_path / "models"
    old = add_linear_version(model_dir, "20260101-000000-000aaaaaa", c=0.5)
    new = add_linear_version(model_dir, "20260102-000000-000bbbbbb")
    models = ModelService(model_dir, None, "cpu")
    assert models.load()
    models.publish(redis_conn, "worker-1")
    (served,) = serving.serving_states(redis_conn)
    assert served.model == serving.ModelFacts(
        version="20260102-000000-000bbbbbb",
        model_type="linear",
        trained_at=served.trained_at,
        accuracy=round(new["accuracy"], 4),
        macro_f1=round(new["macro_f1"], 4),
        labels=SLUGS,
        label_names=LIVEDOOR.names,  # a model folder without labels.json: livedoor's slugs get livedoor's names
        # a model folder without confidence.json: served uncalibrated, with the default bar, and marked so
        confidence={
            "calibrated": False,
            "threshold": 0.5,
            "source": "default",
            "target_precision": None,
            "ece_before": None,
            "ece_after": None,
        },
    )
    assert served.model is not None and served.model.label_set == LIVEDOOR
    assert served.trained_at.startswith("20")
    assert served.versions == (
        ("20260102-000000-000bbbbbb", f"linear, macro-F1 {new['macro_f1']:.4f}"),
        ("20260101-000000-000aaaaaa", f"linear, macro-F1 {old['macro_f1']:.4f}"),
    )


# --- the view --------------------------------------------------------------------------------------------------


def data(**overrides: Any) -> home.HomeData:
    worker = ServingState(
        worker="w1",
        version="20260102-000000-000bbbbbb",
        device="cpu",
        model_type="bert",
        trained_at="2026-01-02T00:00:00+00:00",
        accuracy=0.9123,
        macro_f1=0.9012,
        labels=SLUGS,
        versions=(("20260102-000000-000bbbbbb", "bert, macro-F1 0.9012"), ("20260101-000000-000aaaaaa", "linear")),
    )
    values: dict[str, Any] = {
        "user": "U1",
        "is_admin": False,
        "workers": [worker],
        "classified_today": 3,
        "classified_week": 12,
        "feedback": FeedbackTally(correct=5, wrong=2, waiting=1),
        "recent": [RecentClassification("r1", "<b>見出し</b> & more", "sports-watch", 1700000000.0)],
        "watches": [Watch("CWATCH", "UADMIN", 1.0)],
        "routes": [Route("sports-watch", "CSPORTS", "UADMIN", 1.0)],
    }
    values.update(overrides)
    return home.HomeData(**values)


def test_the_view_shows_the_model_counts_recent_list_watches_and_help() -> None:
    view = home.home_view(data())
    shown = fields(view)
    assert shown["バージョン / Version"] == "`20260102-000000-000bbbbbb`"
    assert (shown["テスト正解率 / Test accuracy"], shown["テスト macro-F1 / Test macro-F1"]) == ("0.9123", "0.9012")
    assert shown["今日の分類 / Classified today"] == "3" and shown["直近7日 / Last 7 days"] == "12"
    assert (shown["👍 正しい / Correct"], shown["👎 違う / Wrong"]) == ("5", "2")
    assert shown["次の再学習を待つ訂正 / Corrections for the next retraining"] == "1"
    text = all_text(view)
    assert "&lt;b&gt;見出し&lt;/b&gt; &amp; more → *スポーツ / Sports Watch*" in text  # escaped, never markup
    assert "<#CWATCH>" in text and "スポーツ / Sports Watch → <#CSPORTS>" in text
    assert "ラベル / Labels (9)" in text and "/classify-news" in text
    assert action_ids(view) == []  # a member's Home has no admin buttons


def test_an_admins_view_has_training_and_the_buttons_with_versions_to_promote() -> None:
    progress = retraining.TrainingProgress(job_id="retrain-1", phase="train", step=5, total_steps=10, eta_s=65)
    view = home.home_view(data(is_admin=True, training_job="retrain-1", training=progress))
    assert action_ids(view) == ["home_retrain_bert", "home_retrain_linear", "home_rollback", "home_promote"]
    (actions,) = [b for b in view["blocks"] if b["type"] == "actions"]
    select = actions["elements"][-1]
    assert [o["value"] for o in select["options"]] == ["20260102-000000-000bbbbbb", "20260101-000000-000aaaaaa"]
    assert "(current)" in select["options"][0]["text"]["text"]
    assert all("confirm" in element for element in actions["elements"])
    assert "`retrain-1`: 学習中 / Training · step 5/10 · 残り / ETA 1:05" in all_text(view)


def test_an_announced_model_is_shown_while_the_workers_load_it() -> None:
    announced = serving.ModelFacts("20260101-000000-000aaaaaa", "linear", "", 0.5, 0.25, SLUGS)
    view = home.home_view(data(announced=announced))
    assert fields(view)["バージョン / Version"] == "`20260101-000000-000aaaaaa`"
    assert "workers are loading it" in all_text(view)


def test_the_view_keeps_slacks_limits_whatever_the_data() -> None:
    huge = "x" * 5000
    workers = [ServingState(worker=f"w{n}", version=f"v{n}", last_error=huge) for n in range(300)]
    view = home.home_view(
        data(
            is_admin=True,
            notice=huge,
            workers=workers,
            watches=[Watch(f"C{n:06d}", "U", 1.0) for n in range(500)],
            recent=[RecentClassification(f"r{n}", huge, "peachy", 1.0) for n in range(5)],
        )
    )
    assert len(view["blocks"]) <= home.HOME_MAX_BLOCKS
    for block in view["blocks"]:
        assert len((block.get("text") or {}).get("text", "")) <= blocks.SECTION_TEXT_MAX
        assert all(len(f["text"]) <= blocks.FIELD_TEXT_MAX for f in block.get("fields") or [])
    assert "and 290 more" in all_text(view) and "and 470 more" in all_text(view)
    assert home.home_view(data(workers=[]))["blocks"]  # no worker yet: still a Home


def test_the_model_most_workers_serve_is_the_current_one() -> None:
    def worker(name: str, version: str) -> ServingState:
        return ServingState(worker=name, version=version)

    assert home.served_model([]) is None
    assert home.served_model([worker("a", "v1"), worker("b", "v2"), worker("c", "v1")]).version == "v1"  # type: ignore[union-attr]
    assert home.served_model([worker("a", "v1"), worker("b", "v2"), worker("c", "")]).version == "v2"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("response_type", "said", "not_said"),
    [
        ("in_channel", "the result is posted in the channel", "shown to you alone"),
        ("ephemeral", "the result is shown to you alone", "posted in the channel"),
    ],
)
def test_the_help_says_where_classify_news_answers_as_the_setting_does(
    response_type: str, said: str, not_said: str
) -> None:
    text = all_text(home.home_view(data(classify_response_type=response_type)))
    assert said in text and not_said not in text


def test_the_help_names_every_subcommand_of_every_command() -> None:
    text = all_text(home.home_view(data()))
    for command in COMMANDS:
        for sub in command.subcommands:
            assert f"`{command.name} {sub.syntax}`" in text, (command.name, sub.name)
    assert "`/retrain cancel`" in text
