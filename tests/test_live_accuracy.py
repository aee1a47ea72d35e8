"""Issue 19, item 6: accuracy measured live per served version — the answers editors confirmed or corrected over
the last 7 days (with their count), the share of unsure answers and of editors' labels outside the model's labels;
in the App Home, ``/retrain status`` and Prometheus, with a drift warning when live accuracy falls clearly below the
test accuracy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
from prometheus_client import REGISTRY
from rq.job import Job
from slack_sdk import WebClient

from bot.admins import AdminPolicy
from bot.listeners.actions import handle_feedback_choose, handle_feedback_correct, handle_feedback_pick
from bot.listeners.home import handle_home_unsure_label
from common.exceptions import UnknownCategoryError
from common.labels import OUTSIDE_LABEL
from common.settings import Settings
from store import classifications, live, serving
from store.feedback import FeedbackStore, FeedbackTally
from store.queues import classify_queue
from store.trust import TrustPolicy
from testkit.fake_slack import FakeSlack
from testkit.inprocess_worker import enqueue_classify, install_runtime, run_burst, worker_settings
from testkit.linear_model import train_calibrated_linear
from testkit.redis_server import RedisServer
from tests.home_models import all_text
from tests.test_confidence import TEXTS
from training.api import TrainOutcome
from ui import home
from ui.admin import EDITORS_ONLY_LABELS
from ui.ids import HOME_UNSURE_LABEL_ACTION, choose_block_id, pick_action_id, pick_value, unsure_block_id
from worker import admin
from worker.classifier import ModelService

TOKYO = ZoneInfo("Asia/Tokyo")
EDITOR = "UEDITOR"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainOutcome:
    return train_calibrated_linear(tmp_path_factory.mktemp("live"))


def _click(user: str, record_id: str) -> dict[str, Any]:
    return {"user": {"id": user}, "channel": {"id": "C42"}, "container": {"channel_id": "C42"}}


def _classify_texts(
    trained: TrainOutcome, redis_server: RedisServer, redis_conn: redis.Redis, fake_slack: FakeSlack
) -> tuple[Settings, list[dict[str, Any] | None]]:
    """The worker's settings (EDITOR an editor), and the results of classifying TEXTS in order, one mention each,
    through the in-process worker serving ``trained``."""
    settings = worker_settings(redis_server.url, fake_slack.api_url, trained.path.parent, editor_user_ids=[EDITOR])
    install_runtime(settings, redis_conn)
    queue = classify_queue(redis_conn)
    jobs = [enqueue_classify(queue, f"<@UBOT> {text}", n) for n, text in enumerate(TEXTS, 1)]
    run_burst(redis_conn)
    return settings, [Job.fetch(j.id, connection=redis_conn, serializer=queue.serializer).return_value() for j in jobs]


def test_live_figures_move_with_editors_answers_and_show_everywhere(
    trained: TrainOutcome, redis_server: RedisServer, redis_conn: redis.Redis, fake_slack: FakeSlack
) -> None:
    settings, results = _classify_texts(trained, redis_server, redis_conn, fake_slack)
    assert all(r is not None for r in results)
    # Each stored record carries the served decision…
    for result in results:
        assert result is not None
        record = classifications.get_classification(redis_conn, result["record_id"])
        assert record.unsure == result["unsure"]
    unsure = sum(1 for r in results if r is not None and r["unsure"])
    assert unsure > 0  # the stories from no known desk at least
    # …and is counted once per article, a retried job adding nothing.
    figures = live.live_figures(redis_conn, trained.version, tz=TOKYO)
    assert (figures.answered, figures.unsure, figures.labelled, figures.accuracy) == (len(TEXTS), unsure, 0, None)
    again = [(r["record_id"], r["unsure"]) for r in results if r is not None]
    live.count_answered(redis_conn, trained.version, again, tz=TOKYO)
    assert live.live_figures(redis_conn, trained.version, tz=TOKYO).answered == len(TEXTS)

    store = FeedbackStore(redis_conn, settings.newsroom_timezone)
    client = WebClient(token="xoxb-test-token", base_url=fake_slack.api_url)
    first, second, third = (r for r in results[:3] if r is not None)
    other = next(label for label in trained.labels.labels if label != second["slug"])

    def correct(user: str, record: dict[str, Any]) -> None:
        action = {"value": record["record_id"]}
        handle_feedback_correct(lambda: None, _click(user, ""), action, store, client, settings)  # type: ignore[arg-type]

    def pick(user: str, record: dict[str, Any], label: str) -> None:
        action = {"action_id": pick_action_id(0), "value": pick_value(record["record_id"], label)}
        handle_feedback_pick(lambda: None, _click(user, ""), action, store, client, settings)  # type: ignore[arg-type]

    # A member who is not an editor: stored, but not counted live.
    correct("UMEMBER", first)
    assert live.live_figures(redis_conn, trained.version, tz=TOKYO).labelled == 0
    # The editor confirms one, and corrects another (the which-desk buttons, then the category select).
    correct(EDITOR, first)
    pick(EDITOR, second, other)
    figures = live.live_figures(redis_conn, trained.version, tz=TOKYO)
    assert (figures.confirmed, figures.corrected, figures.labelled, figures.accuracy) == (1, 1, 2, 0.5)
    responses: list[dict[str, Any]] = []
    elsewhere = next(label for label in trained.labels.labels if label != third["slug"])
    choose = {"block_id": choose_block_id(third["record_id"]), "selected_option": {"value": elsewhere}}
    handle_feedback_choose(
        lambda: None,  # type: ignore[arg-type]
        _click(EDITOR, ""),
        choose,
        store,
        client,
        lambda **kw: responses.append(kw),  # type: ignore[arg-type]
        settings,
    )
    figures = live.live_figures(redis_conn, trained.version, tz=TOKYO)
    assert (figures.confirmed, figures.corrected, figures.outside) == (1, 2, 0)
    # A changed answer moves the article, never counts it twice.
    pick(EDITOR, second, second["slug"])
    figures = live.live_figures(redis_conn, trained.version, tz=TOKYO)
    assert (figures.confirmed, figures.corrected, figures.labelled) == (2, 1, 3)
    assert figures.unsure_share == unsure / len(TEXTS) and figures.outside_share == 0.0

    # The App Home and /retrain status show them for the served version; Prometheus exports them.
    models = ModelService(trained.path.parent, None, "cpu")
    assert models.load()
    models.publish(redis_conn, "worker-1")
    data = home.gather(redis_conn, "U1", False, timezone="Asia/Tokyo", classify_response_type="ephemeral")
    text = all_text(home.home_view(data))
    assert "accuracy 66.7%" in text and "3 confirmed or corrected by editors" in text
    assert f"unsure {unsure / len(TEXTS):.1%} of {len(TEXTS)} answers" in text
    status = admin.status_text(settings, redis_conn)
    assert "accuracy 66.7%" in status and f"of {len(TEXTS)} answers" in status
    samples = live.gauge_samples(live.served_figures(redis_conn, tz=TOKYO))
    assert samples == [
        (
            trained.version,
            {
                "accuracy": 2 / 3,
                "labelled": 3.0,
                "answered": float(len(TEXTS)),
                "unsure_share": unsure / len(TEXTS),
                "outside_share": 0.0,
            },
        )
    ]


def test_the_gauges_are_read_at_scrape_time() -> None:
    from telemetry import metrics

    values: dict[str, float | None] = {"accuracy": 0.8, "labelled": 5.0, "answered": 9.0, "unsure_share": None}
    metrics.watch_live_accuracy(lambda: [("v7", values)])
    assert REGISTRY.get_sample_value("newsbot_live_accuracy", {"version": "v7"}) == 0.8
    assert REGISTRY.get_sample_value("newsbot_live_unsure_share", {"version": "v7"}) is None  # not measured yet
    values["accuracy"] = 0.5
    assert REGISTRY.get_sample_value("newsbot_live_accuracy", {"version": "v7"}) == 0.5


def test_outside_labels_and_editor_answers_on_uncounted_articles(redis_conn: redis.Redis) -> None:
    # A record of an earlier release has no `unsure` field: it reads as sure; the flag round-trips.
    assert not classifications.ClassificationRecord.decode("old", {"title": "t", "body": "b", "slug": "it"}).unsure
    record = classifications.ClassificationRecord("r0", "t", "b", "", "it", "v1", "C1", unsure=True)
    assert classifications.ClassificationRecord.decode("r0", record.encode()).unsure
    at = 1_760_000_000.0
    day = live.classified_day("2025-10-09T08:53:20+00:00", TOKYO)
    assert day == "2025-10-09"
    live.count_answered(redis_conn, "v1", [("r1", False), ("r2", True)], tz=TOKYO, at=at)
    assert live.outcome_of("sports", "weather", ["sports", "it"]) == live.OUTSIDE
    assert live.count_labelled(redis_conn, "v1", day, "r1", live.OUTSIDE)
    assert not live.count_labelled(redis_conn, "v1", day, "r-unknown", live.CONFIRMED)  # counted nowhere
    figures = live.live_figures(redis_conn, "v1", tz=TOKYO, at=at + 6 * 86400)
    assert (figures.answered, figures.unsure, figures.outside, figures.outside_share) == (2, 1, 1, 1.0)
    assert live.live_figures(redis_conn, "v1", tz=TOKYO, at=at + 7 * 86400).answered == 0  # rolled out of 7 days
    assert 0 < redis_conn.ttl(live.LIVE_COUNTS.key_for(f"{day}:v1")) <= live.LIVE_TTL_S


def test_the_unsure_list_keeps_the_articles_of_one_message_in_their_order(redis_conn: redis.Redis) -> None:
    # One message's articles are classified at the same moment, their record ids `<job>:1` … `<job>:n`
    # (worker.jobs.record_id_for; up to MAX_LINKS_PER_MESSAGE=50): the list shows them in the message's order, not
    # in the ids' string order (`:10` before `:2`), and after the articles classified before them.
    at = 1_760_000_000.0
    live.count_answered(redis_conn, "v1", [("earlier", True)], tz=TOKYO, at=at - 1)
    job = [(f"classify-abc:{n}", n != 3) for n in range(1, 13)]
    live.count_answered(redis_conn, "v1", job, tz=TOKYO, at=at)
    listed = live.unsure_today(redis_conn, tz=TOKYO, at=at)
    assert [record_id for record_id, _ in listed] == ["earlier", *(rid for rid, unsure in job if unsure)]
    assert all(at <= when < at + 1 for _, when in listed[1:])  # still when they were classified, to the second


def test_the_drift_warning_needs_enough_answers_and_a_clear_gap(redis_conn: redis.Redis) -> None:
    # 40 labelled, 30 right (75 %) against 95 % on the test split: margin 2·sqrt(.95·.05/40) ≈ 6.9 points → drift.
    low = live.LiveFigures("v1", answered=100, unsure=10, confirmed=30, corrected=10)
    assert live.drifted(low, 0.95)
    # The same gap on 20 answers says too little (fewer than DRIFT_MIN_LABELLED); 37/40 (92.5 %) is within the margin.
    assert not live.drifted(live.LiveFigures("v1", confirmed=15, corrected=5), 0.95)
    assert not live.drifted(live.LiveFigures("v1", confirmed=37, corrected=3), 0.95)
    assert not live.drifted(low, None)
    state = serving.ServingState(worker="w1", version="v1", model_type="linear", accuracy=0.95)
    data = home.HomeData("U1", False, [state], 0, 0, FeedbackTally(0, 0, 0), [], [], [], live=low)
    text = all_text(home.home_view(data))
    assert "Drift" in text and "live accuracy 75.0%" in text and "test 95.0%" in text and "6.9%" in text
    calm = home.HomeData("U1", False, [state], 0, 0, FeedbackTally(0, 0, 0), [], [], [], live=live.LiveFigures("v1"))
    text = all_text(home.home_view(calm))
    assert "Drift" not in text and "no answers yet" in text


def _published(fake_slack: FakeSlack) -> dict[str, Any]:
    view = fake_slack.calls_to("views.publish")[-1].params["view"]
    parsed: dict[str, Any] = json.loads(view) if isinstance(view, str) else view
    return parsed


def test_editors_label_todays_unsure_articles_in_the_home(
    trained: TrainOutcome, redis_server: RedisServer, redis_conn: redis.Redis, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    settings, results = _classify_texts(trained, redis_server, redis_conn, fake_slack)
    unsure_ids = [r["record_id"] for r in results if r is not None and r["unsure"]]
    assert unsure_ids
    # The list: today's unsure articles, oldest first (the jobs ran in order), for editors only.
    store = FeedbackStore(redis_conn, settings.newsroom_timezone)
    policy = TrustPolicy(editors=frozenset({EDITOR}))
    waiting = store.unsure_to_label(policy)
    assert [item.record_id for item in waiting] == unsure_ids
    assert [item.at for item in waiting] == sorted(item.at for item in waiting)
    first = waiting[0]
    editor_home = home.home_view(
        home.gather(redis_conn, EDITOR, False, timezone="Asia/Tokyo", classify_response_type="ephemeral", trust=policy)
    )
    block_ids = [b.get("block_id") for b in editor_home["blocks"]]
    assert unsure_block_id(first.record_id) in block_ids and "Today's unsure articles" in all_text(editor_home)
    member_home = home.home_view(
        home.gather(
            redis_conn, "UMEMBER", False, timezone="Asia/Tokyo", classify_response_type="ephemeral", trust=policy
        )
    )
    assert "Today's unsure articles" not in all_text(member_home)

    client = WebClient(token="xoxb-test-token", base_url=fake_slack.api_url)
    label = next(x for x in trained.labels.labels if x != first.predicted)
    action = {
        "action_id": HOME_UNSURE_LABEL_ACTION,
        "block_id": unsure_block_id(first.record_id),
        "selected_option": {"value": label},
    }
    admins = AdminPolicy(settings)
    # Someone who is not an editor: refused on an updated Home, nothing stored.
    handle_home_unsure_label(lambda: None, {"user": {"id": "UMEMBER"}}, action, store, settings, admins, client)  # type: ignore[arg-type]
    assert EDITORS_ONLY_LABELS in all_text(_published(fake_slack))
    assert store.for_record(first.record_id) == []
    # The editor's label: stored through the feedback path, counted live, and the article leaves the list.
    handle_home_unsure_label(lambda: None, {"user": {"id": EDITOR}}, action, store, settings, admins, client)  # type: ignore[arg-type]
    (answer,) = store.for_record(first.record_id)
    assert (answer.user, answer.predicted, answer.chosen) == (EDITOR, first.predicted, label)
    figures = live.live_figures(redis_conn, trained.version, tz=TOKYO)
    assert (figures.corrected, figures.labelled) == (1, 1)
    view = _published(fake_slack)
    assert unsure_block_id(first.record_id) not in [b.get("block_id") for b in view["blocks"]]
    assert [item.record_id for item in store.unsure_to_label(policy)] == unsure_ids[1:]

    # "A desk the model does not have": the editor's answer is kept, counted outside the model's labels, and never
    # trained on (the export skips a label the model does not have); a member cannot give it.
    assert len(unsure_ids) > 1
    other = {**action, "block_id": unsure_block_id(unsure_ids[1]), "selected_option": {"value": OUTSIDE_LABEL}}
    assert OUTSIDE_LABEL in [o["value"] for o in home.unsure_select(waiting[1])["options"]]
    handle_home_unsure_label(lambda: None, {"user": {"id": EDITOR}}, other, store, settings, admins, client)  # type: ignore[arg-type]
    assert "A desk the model does not have" in all_text(_published(fake_slack))
    figures = live.live_figures(redis_conn, trained.version, tz=TOKYO)
    assert (figures.corrected, figures.outside, figures.outside_share) == (1, 1, 0.5)
    with pytest.raises(UnknownCategoryError):
        store.record(unsure_ids[1], "UMEMBER", OUTSIDE_LABEL)
    summary = store.export_corrections(tmp_path / "c.jsonl", policy)
    assert summary.written == 1 and summary.skipped == 1
