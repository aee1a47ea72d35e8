"""The App Home over real HTTP: signed ``app_home_opened`` events and Home clicks to the real bot process, the
fake Slack Web API over HTTP, the real worker code (in this process) publishing its serving state, classifying,
and running the admin jobs the Home enqueues.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from rq import Queue

from common.jobs import RETRAIN_JOB, ROLLBACK_JOB
from newsmodel import registry
from store import retraining
from store.feedback import FeedbackStore
from store.queues import SERIALIZER
from store.trust import TrustPolicy
from testkit.fake_slack import FakeSlack
from testkit.inprocess_worker import enqueue_classify, install_runtime, run_burst, worker_settings
from testkit.processes import product_env, running_bot
from testkit.redis_server import RedisServer
from testkit.signing import event_body, signed_json_headers
from testkit.slack_requests import SECRET, block_action, interaction, trigger_id
from tests.home_models import action_ids, add_linear_version, all_text, fields, view_of
from ui.ids import FEEDBACK_CHOOSE_ACTION, FEEDBACK_CORRECT_ACTION
from worker.classifier import ModelService

ADMIN = "UADMIN"
FIRST = "20260101-000000-000aaaaaa"
SECOND = "20260102-000000-000bbbbbb"
VERSION, ACCURACY, MACRO_F1 = "バージョン / Version", "テスト正解率 / Test accuracy", "テスト macro-F1 / Test macro-F1"
TODAY, WEEK = "今日の分類 / Classified today", "直近7日 / Last 7 days"
CORRECT, WRONG = "👍 正しい / Correct", "👎 違う / Wrong"
WAITING = "次の再学習を待つ訂正 / Corrections for the next retraining"
TRUSTED = TrustPolicy(frozenset({"U1", "U2"}))  # editors: their corrections count
_events = itertools.count(1)


@pytest.fixture(scope="module")
def bot_url(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, fake_slack_server: FakeSlack
) -> Iterator[str]:
    env = product_env(
        REDIS_URL=redis_server.url,
        SLACK_API_URL=fake_slack_server.api_url,
        SLACK_SIGNING_SECRET=SECRET,
        ADMIN_USER_IDS=f"{ADMIN},UOTHERADMIN",
    )
    with running_bot(env, tmp_path_factory.mktemp("bot")) as url:
        yield url


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """Two registered linear versions, the second current (as a training that promoted it leaves them)."""
    models = tmp_path / "models"
    add_linear_version(models, FIRST, c=0.3)
    add_linear_version(models, SECOND)
    return models


@pytest.fixture
def serving(model_dir: Path, redis_conn: redis.Redis) -> ModelService:
    """A worker's model service that loaded the current version and published what it serves."""
    models = ModelService(model_dir, None, "cpu")
    assert models.load()
    models.publish(redis_conn, "worker-1")
    return models


def homes(fake: FakeSlack, user: str) -> list[dict[str, Any]]:
    return [view_of(c.params) for c in fake.calls_to("views.publish") if c.params.get("user_id") == user]


def open_home(
    bot_url: str, fake: FakeSlack, user: str, channel: str | None = None, secret: str = SECRET
) -> dict[str, Any]:
    """Open ``user``'s Home tab (an app_home_opened event signed with ``secret``); the view the bot published."""
    before = len(homes(fake, user))
    event = {"type": "app_home_opened", "user": user, "channel": channel or f"D{user}", "tab": "home"}
    event["event_ts"] = "1700000000.000100"
    body = event_body(event, f"EvHome{next(_events)}")
    answer = httpx.post(bot_url, content=body, headers=signed_json_headers(body, secret), timeout=20)
    assert answer.status_code == 200
    fake.wait_for(lambda f: len(homes(f, user)) > before, timeout=15)
    return homes(fake, user)[-1]


def click_home(bot_url: str, user: str, action: dict[str, Any], secret: str = SECRET) -> httpx.Response:
    """A click on the Home tab: a block action with the view as its container, no channel, no response_url; signed
    with ``secret``."""
    payload = {
        "type": "block_actions",
        "trigger_id": trigger_id(),
        "team": {"id": "T0001", "domain": "fake"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0001"},
        "api_app_id": "A0001",
        "token": "unused",
        "container": {"type": "view", "view_id": "VHOME"},
        "view": {"id": "VHOME", "type": "home", "blocks": []},
        "actions": [{"action_ts": "1700000000.2", "block_id": "home_admin", **action}],
    }
    answer = interaction(bot_url, payload, secret)
    assert answer.status_code == 200
    return answer


def jobs(conn: redis.Redis, queue: str) -> list[tuple[str | None, dict[str, Any]]]:
    return [(job.func_name, job.args[0]) for job in Queue(queue, connection=conn, serializer=SERIALIZER).jobs]


ROLLBACK = {"action_id": "home_rollback", "type": "button", "value": "previous"}
RETRAIN = {"action_id": "home_retrain_linear", "type": "button", "value": "linear"}


def promote(version: str) -> dict[str, Any]:
    option = {"text": {"type": "plain_text", "text": version}, "value": version}
    return {"action_id": "home_promote", "type": "static_select", "selected_option": option}


# --- what the Home shows ------------------------------------------------------------------------------------


def test_the_home_shows_the_served_model_and_only_admins_get_the_buttons(
    bot_url: str, fake_slack: FakeSlack, redis_conn: redis.Redis, model_dir: Path, serving: ModelService
) -> None:
    metrics = registry.read_metrics(model_dir / SECOND)
    assert metrics is not None
    member = open_home(bot_url, fake_slack, "U1")
    shown = fields(member)
    assert shown[VERSION] == f"`{SECOND}`" and shown["種類 / Type"] == "linear"
    assert (shown[ACCURACY], shown[MACRO_F1]) == (f"{metrics['accuracy']:.4f}", f"{metrics['macro_f1']:.4f}")
    assert "スポーツ / Sports Watch" in all_text(member) and "`worker-1`" in all_text(member)
    assert action_ids(member) == []

    admin = open_home(bot_url, fake_slack, ADMIN)
    assert action_ids(admin) == ["home_retrain_bert", "home_retrain_linear", "home_rollback", "home_promote"]
    (actions,) = [b for b in admin["blocks"] if b["type"] == "actions"]
    assert [o["value"] for o in actions["elements"][-1]["options"]] == [SECOND, FIRST]
    assert "学習は実行されていません" in all_text(admin)
    assert all(c.delivered for c in fake_slack.calls_to("views.publish"))  # Slack accepted each view


def test_counts_and_the_users_own_list_follow_classifications_and_feedback(
    bot_url: str,
    fake_slack: FakeSlack,
    redis_conn: redis.Redis,
    redis_server: RedisServer,
    model_dir: Path,
    serving: ModelService,
) -> None:
    before = fields(open_home(bot_url, fake_slack, "U1"))
    assert (before[TODAY], before[WEEK], before[CORRECT], before[WRONG], before[WAITING]) == ("0", "0", "0", "0", "0")
    assert "まだありません" in all_text(homes(fake_slack, "U1")[-1])

    settings = worker_settings(redis_server.url, fake_slack.api_url, model_dir)
    install_runtime(settings, redis_conn)
    queue = Queue("classify", connection=redis_conn, serializer=SERIALIZER)
    enqueue_classify(queue, "日本代表は試合終了間際のゴールで勝利し、監督は選手をたたえた。", 1, user="U1")
    enqueue_classify(queue, "最新のロボット掃除機は部屋の間取りを記憶して効率よく掃除する。", 2, user="U1")
    enqueue_classify(queue, "話題の映画が公開初日に興行収入一位となった。", 3, user="U2")
    run_burst(redis_conn)
    assert len(fake_slack.calls_to("chat.postMessage")) == 3  # each job replied

    after = open_home(bot_url, fake_slack, "U1")
    shown = fields(after)
    assert (shown[TODAY], shown[WEEK]) == ("3", "3")
    store = FeedbackStore(redis_conn)
    mine = [store.classification(f"classify-test{n:04d}") for n in (2, 1)]  # newest first
    recent = all_text(after).split("あなたの最近の分類 / Your recent classifications", 1)[1].split("\n")[1:3]
    for line, record in zip(recent, mine, strict=True):
        assert line.startswith(f"• {record.body[:20]}") and f"→ *{_display(record.slug)}*" in line
    assert "話題の映画" not in all_text(after)  # U2's article is on U2's Home, not U1's

    # Feedback through the bot: U1 confirms the first, U2 corrects the second.
    message = {"type": "message", "ts": "1700000001.000100", "text": "result", "blocks": []}
    correct = {"action_id": FEEDBACK_CORRECT_ACTION, "block_id": "feedback", "value": "classify-test0001"}
    block_action(
        bot_url, {**correct, "type": "button"}, user="U1", message=message, response_url="http://127.0.0.1:9/x"
    )
    chosen = "peachy" if mine[0].slug != "peachy" else "smax"
    choose = {
        "action_id": FEEDBACK_CHOOSE_ACTION,
        "block_id": "feedback_choose:classify-test0002",
        "type": "static_select",
        "selected_option": {"value": chosen, "text": {"type": "plain_text", "text": "x"}},
    }
    block_action(bot_url, choose, user="U2", message=None, ephemeral=True, response_url=fake_slack.response_url("c"))
    shown = fields(open_home(bot_url, fake_slack, "U1"))
    assert (shown[CORRECT], shown[WRONG], shown[WAITING]) == ("1", "1", "1")

    # A training takes the corrections: none waits any more, the counts stay.
    store.export_corrections(Path(settings.model_dir).parent / "corrections.jsonl", TRUSTED)
    shown = fields(open_home(bot_url, fake_slack, "U1"))
    assert (shown[CORRECT], shown[WRONG], shown[WAITING]) == ("1", "1", "0")


def _display(slug: str) -> str:
    from common.labels import category

    return category(slug).display


# --- the admin buttons ----------------------------------------------------------------------------------------


def test_a_members_click_on_an_admin_button_is_refused_and_enqueues_nothing(
    bot_url: str, fake_slack: FakeSlack, redis_conn: redis.Redis, serving: ModelService
) -> None:
    open_home(bot_url, fake_slack, "U1")
    for action in [ROLLBACK, RETRAIN, promote(FIRST)]:
        shown = len(homes(fake_slack, "U1"))
        click_home(bot_url, "U1", action)
        assert len(homes(fake_slack, "U1")) == shown + 1  # the bot answers Slack after publishing
        refused = homes(fake_slack, "U1")[-1]
        assert "only newsbot admins" in all_text(refused) and action_ids(refused) == []
    assert jobs(redis_conn, "classify") == [] and jobs(redis_conn, "train") == []
    assert retraining.training_lock(redis_conn) is None


def test_an_admins_clicks_enqueue_the_admin_jobs_answering_in_their_dm(
    bot_url: str, fake_slack: FakeSlack, redis_conn: redis.Redis, serving: ModelService
) -> None:
    # An admin whose DM with the app the bot does not know yet is asked to reopen the Home.
    click_home(bot_url, "UOTHERADMIN", ROLLBACK)
    fake_slack.wait_for(lambda f: len(homes(f, "UOTHERADMIN")) == 1, timeout=15)
    assert "open the Home tab again" in all_text(homes(fake_slack, "UOTHERADMIN")[0])
    assert jobs(redis_conn, "classify") == []

    open_home(bot_url, fake_slack, ADMIN, channel="DADMIN")
    click_home(bot_url, ADMIN, promote(FIRST))
    ((name, payload),) = jobs(redis_conn, "classify")
    assert (name, payload["version"], payload["user"], payload["channel"]) == (ROLLBACK_JOB, FIRST, ADMIN, "DADMIN")
    assert payload["response_url"] is None
    assert f"Making `{FIRST}` current" in all_text(homes(fake_slack, ADMIN)[-1])

    click_home(bot_url, ADMIN, ROLLBACK)
    assert [(n, p["version"]) for n, p in jobs(redis_conn, "classify")] == [(ROLLBACK_JOB, None), (ROLLBACK_JOB, FIRST)]

    click_home(bot_url, ADMIN, RETRAIN)
    ((name, payload),) = jobs(redis_conn, "train")
    assert (name, payload["model_type"], payload["channel"], payload["user"]) == (
        RETRAIN_JOB,
        "linear",
        "DADMIN",
        ADMIN,
    )
    assert "Training queued" in all_text(homes(fake_slack, ADMIN)[-1])
    click_home(bot_url, ADMIN, RETRAIN)  # one training at a time
    assert len(jobs(redis_conn, "train")) == 1
    assert "already queued or running" in all_text(homes(fake_slack, ADMIN)[-1])


def test_a_promote_from_the_home_republishes_the_recent_viewers_homes(
    bot_url: str,
    fake_slack: FakeSlack,
    redis_conn: redis.Redis,
    redis_server: RedisServer,
    model_dir: Path,
    serving: ModelService,
) -> None:
    settings = worker_settings(redis_server.url, fake_slack.api_url, model_dir)
    runtime = install_runtime(settings, redis_conn)
    open_home(bot_url, fake_slack, "U1")
    open_home(bot_url, fake_slack, ADMIN, channel="DADMIN")
    click_home(bot_url, ADMIN, promote(FIRST))
    opened = {user: len(homes(fake_slack, user)) for user in ("U1", ADMIN)}

    run_burst(redis_conn)  # the worker runs the rollback job the click enqueued

    assert registry.current_version(model_dir) == FIRST
    (answer,) = fake_slack.calls_to("chat.postEphemeral")
    assert (answer.params["channel"], answer.params["user"]) == ("DADMIN", ADMIN) and FIRST in answer.params["text"]
    first = registry.read_metrics(model_dir / FIRST)
    assert first is not None
    for user in ("U1", ADMIN):
        republished = homes(fake_slack, user)[opened[user] :]
        assert len(republished) == 1, user
        shown = fields(republished[0])
        assert shown[VERSION] == f"`{FIRST}`" and shown[MACRO_F1] == f"{first['macro_f1']:.4f}"
        assert "workers are loading it" in all_text(republished[0])  # worker-1 still serves the second one
        assert bool(action_ids(republished[0])) is (user == ADMIN)

    # Once the worker has swapped the new current version in, the Home shows it as served.
    assert runtime.models.check_for_update()
    serving.check_for_update()
    serving.publish(redis_conn, "worker-1")
    home = open_home(bot_url, fake_slack, "U1")
    assert fields(home)[VERSION] == f"`{FIRST}`" and "loading" not in all_text(home)
