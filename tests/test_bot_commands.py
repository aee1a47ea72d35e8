"""The Slack surface over real HTTP with signed requests: commands, the shortcut, admin checks, feedback clicks.

One bot process (``python -m bot --http``) serves the whole module; the jobs it enqueues are read back from Redis.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from rq import Queue

from common.jobs import CLASSIFY_JOB, RETRAIN_JOB, ROLLBACK_JOB, STATUS_JOB
from store import classifications, retraining
from store.classifications import ClassificationRecord
from store.feedback import FeedbackStore
from store.queues import SERIALIZER
from testkit.fake_slack import FakeSlack
from testkit.processes import product_env, running_bot
from testkit.redis_server import RedisServer
from testkit.signing import event_body, mention_event, signed_json_headers
from testkit.slack_requests import SECRET, block_action, message_shortcut, slash_command
from testkit.waiting import wait_until
from ui.ids import FEEDBACK_CHOOSE_ACTION, FEEDBACK_CORRECT_ACTION, FEEDBACK_WRONG_ACTION, RETRAIN_PROMOTE_ACTION

ADMIN = "UADMIN"
OWNER = "UOWNER"  # not in ADMIN_USER_IDS, but a workspace owner according to users.info


@pytest.fixture(scope="module")
def bot_url(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, fake_slack_server: FakeSlack
) -> Iterator[str]:
    env = product_env(
        REDIS_URL=redis_server.url,
        SLACK_API_URL=fake_slack_server.api_url,
        SLACK_SIGNING_SECRET=SECRET,
        ADMIN_USER_IDS=f"{ADMIN},UOTHERADMIN",
        ADMINS_INCLUDE_WORKSPACE_ADMINS="true",
        CLASSIFY_RESPONSE_TYPE="ephemeral",
        RETRAIN_MAX_EPOCHS="20",
    )
    with running_bot(env, tmp_path_factory.mktemp("bot")) as url:
        yield url


def jobs(conn: redis.Redis, queue: str) -> list[tuple[str, dict[str, Any]]]:
    """(dotted function path, payload) of every job waiting in ``queue``, in queue order."""
    return [(job.func_name, job.args[0]) for job in Queue(queue, connection=conn, serializer=SERIALIZER).jobs]


# --- /classify-news ------------------------------------------------------------------------------------------
def test_classify_news_acks_at_once_and_enqueues_once(
    bot_url: str, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    url = fake_slack.response_url("classify1")
    text = "日本代表は試合終了間際のゴールで勝利した。"
    first = slash_command(bot_url, "/classify-news", text, user="U1", response_url=url, trigger="trig-1")
    assert first.status_code == 200
    assert first.elapsed.total_seconds() < 3
    assert first.json() == {"text": "分類しています… / Classifying…", "response_type": "ephemeral"}
    # The same delivery again (same trigger id) enqueues nothing new.
    slash_command(bot_url, "/classify-news", text, user="U1", response_url=url, trigger="trig-1")
    queued = jobs(redis_conn, "classify")
    assert [name for name, _ in queued] == [CLASSIFY_JOB]
    payload = queued[0][1]
    assert payload["text"] == text
    assert payload["response_url"] == url
    assert payload["response_type"] == "ephemeral"  # the CLASSIFY_RESPONSE_TYPE setting
    assert (payload["source"], payload["channel"], payload["user"]) == ("command", "C42", "U1")


def test_message_shortcut_classifies_that_message_in_its_thread(
    bot_url: str, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    root = {"type": "message", "user": "U2", "ts": "1700000000.000100", "text": "新型スマートフォンの記事です。"}
    in_thread = {**root, "ts": "1700000000.000300", "thread_ts": "1700000000.000100", "text": "<https://example.com/a>"}
    assert message_shortcut(bot_url, root, user="U1").status_code == 200
    assert message_shortcut(bot_url, in_thread, user="U1").status_code == 200
    queued = [payload for _, payload in jobs(redis_conn, "classify")]
    assert [(p["text"], p["thread_ts"], p["source"]) for p in queued] == [
        ("新型スマートフォンの記事です。", "1700000000.000100", "shortcut"),
        ("<https://example.com/a>", "1700000000.000100", "shortcut"),
    ]
    empty = {"type": "message", "user": "U2", "ts": "1700000000.000400", "text": "  "}
    message_shortcut(bot_url, empty, user="U1")
    notes = fake_slack.wait_for_calls("chat.postEphemeral", 1)
    assert "no article text" in notes[0].params["text"]
    assert len(jobs(redis_conn, "classify")) == 2


# --- mentions ------------------------------------------------------------------------------------------------
def post_mention(bot_url: str, text: str, event_id: str, ts: str, **headers: str) -> httpx.Response:
    body = event_body(mention_event(ts, text, channel="C42", user="U1"), event_id)
    return httpx.post(bot_url, content=body, headers={**signed_json_headers(body, SECRET), **headers}, timeout=20)


def usage_replies(fake: FakeSlack) -> list[tuple[str, str]]:
    return [
        (c.params["channel"], c.params["thread_ts"])
        for c in fake.calls_to("chat.postMessage")
        if "Mention me with an article" in c.params.get("text", "")
    ]


def test_an_empty_mention_gets_its_usage_reply_once_however_often_slack_delivers_it(
    bot_url: str, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    assert post_mention(bot_url, "", "EvEmpty1", "1700000005.000100").status_code == 200
    for attempt in ("1", "2"):
        retry = post_mention(bot_url, "", "EvEmpty1", "1700000005.000100", **{"X-Slack-Retry-Num": attempt})
        assert retry.status_code == 200
    # Listeners run before the HTTP answer: when the last retry was answered, every reply had been posted.
    assert usage_replies(fake_slack) == [("C42", "1700000005.000100")]
    assert jobs(redis_conn, "classify") == []


# --- /retrain ------------------------------------------------------------------------------------------------
def test_retrain_by_a_non_admin_is_refused_and_enqueues_nothing(
    bot_url: str, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    for text, name in [("", "nobody1"), ("force", "nobody2"), ("rollback", "nobody3"), ("status", "nobody4")]:
        answer = slash_command(bot_url, "/retrain", text, user="UNOBODY", response_url=fake_slack.response_url(name))
        assert answer.status_code == 200
        (refusal,) = fake_slack.wait_responses(name)
        assert "管理者のみ" in refusal["text"] and "only newsbot admins" in refusal["text"]
        assert refusal["response_type"] == "ephemeral"
    assert jobs(redis_conn, "train") == [] and jobs(redis_conn, "classify") == []
    assert retraining.training_lock(redis_conn) is None
    users_info = [c.params.get("user") for c in fake_slack.calls_to("users.info")]
    assert users_info and set(users_info) == {"UNOBODY"}  # asked Slack once per minute at most, then cached


def test_a_slack_connect_partners_admin_is_not_an_admin_here(
    bot_url: str, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    """users.info says is_admin/is_owner for an external org's admin too, with their own team_id."""
    fake_slack.users["UPARTNER"] = {"id": "UPARTNER", "is_admin": True, "is_owner": True, "team_id": "TPARTNER"}
    fake_slack.users["UWSADMIN"] = {"id": "UWSADMIN", "is_admin": True, "is_owner": False}  # this workspace's
    slash_command(bot_url, "/retrain", "status", user="UPARTNER", response_url=fake_slack.response_url("ext"))
    (refusal,) = fake_slack.wait_responses("ext")
    assert "only newsbot admins" in refusal["text"]
    assert jobs(redis_conn, "classify") == []

    slash_command(bot_url, "/retrain", "status", user="UWSADMIN", response_url=fake_slack.response_url("own"))
    ((name, payload),) = jobs(redis_conn, "classify")
    assert (name, payload["user"]) == (STATUS_JOB, "UWSADMIN")


def test_one_training_at_a_time_and_admin_jobs_jump_the_queue(
    bot_url: str, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    fake_slack.users[OWNER] = {"id": OWNER, "is_admin": False, "is_owner": True}
    slash_command(bot_url, "/retrain", "epochs=2 type=linear", user=OWNER, response_url=fake_slack.response_url("r1"))
    (queued,) = fake_slack.wait_responses("r1")
    assert "Training queued" in queued["text"]
    ((name, payload),) = jobs(redis_conn, "train")
    assert name == RETRAIN_JOB
    assert (payload["user"], payload["epochs"], payload["model_type"], payload["force"]) == (
        OWNER,
        2.0,
        "linear",
        False,
    )
    assert payload["channel"] == "C42"

    # A second /retrain while the first is still queued answers with its status and starts nothing.
    slash_command(bot_url, "/retrain", "force", user=ADMIN, response_url=fake_slack.response_url("r2"))
    (busy,) = fake_slack.wait_responses("r2")
    held = retraining.training_lock(redis_conn)
    assert held is not None and held.job_id in busy["text"]
    assert "already" in busy["text"] and "すでに実行中" in busy["text"]
    assert f"`{held.job_id}`: 順番待ち / Queued" in busy["text"]  # the same line as the Home and /retrain status
    assert len(jobs(redis_conn, "train")) == 1

    # status and rollback go to the front of the classify queue, ahead of articles waiting there.
    slash_command(bot_url, "/classify-news", "試合の記事", user="U1", response_url=fake_slack.response_url("c"))
    slash_command(bot_url, "/retrain", "status", user=ADMIN, response_url=fake_slack.response_url("s"))
    slash_command(bot_url, "/retrain", "rollback v1", user=ADMIN, response_url=fake_slack.response_url("rb"))
    queued_jobs = jobs(redis_conn, "classify")
    assert [name for name, _ in queued_jobs] == [ROLLBACK_JOB, STATUS_JOB, CLASSIFY_JOB]
    assert queued_jobs[0][1]["version"] == "v1"
    assert queued_jobs[1][1]["response_url"] == fake_slack.response_url("s")


# --- feedback ------------------------------------------------------------------------------------------------
def classified(conn: redis.Redis, record_id: str, slug: str = "sports-watch") -> dict[str, Any]:
    """A classification record as the worker leaves it, and its reply message as Slack shows it."""
    record = ClassificationRecord(
        record_id=record_id,
        title="",
        body="日本代表は試合終了間際のゴールで勝利した。",
        url="",
        slug=slug,
        model_version="20260101-000000-tiny0001",
        channel="C42",
        ts="1700000001.000100",
        created_at="1700000001",
    )
    classifications.put_classification(conn, record)
    return {
        "type": "message",
        "ts": "1700000001.000100",
        "thread_ts": "1700000000.000100",
        "text": "カテゴリ / Category: スポーツ",
        "blocks": [
            {"type": "section", "block_id": "result", "text": {"type": "mrkdwn", "text": "カテゴリ: スポーツ"}},
            {
                "type": "actions",
                "block_id": "feedback",
                "elements": [
                    {"type": "button", "action_id": FEEDBACK_CORRECT_ACTION, "value": record_id},
                    {"type": "button", "action_id": FEEDBACK_WRONG_ACTION, "value": record_id},
                ],
            },
        ],
    }


def counts_block(call_params: dict[str, Any]) -> str:
    blocks = call_params["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    assert [b.get("block_id") for b in blocks[:2]] == ["result", "feedback"]  # the reply's own blocks are kept
    (counts,) = [b for b in blocks if b.get("block_id") == "newsbot_feedback_counts"]
    return str(counts["elements"][0]["text"])


def test_feedback_clicks_are_stored_replaced_and_counted_on_the_reply(
    bot_url: str, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    message = classified(redis_conn, "rec1")
    store = FeedbackStore(redis_conn)

    # U1: "Correct".
    correct = {"action_id": FEEDBACK_CORRECT_ACTION, "block_id": "feedback", "value": "rec1", "type": "button"}
    assert (
        block_action(bot_url, correct, user="U1", message=message, response_url="http://127.0.0.1:9/x").status_code
        == 200
    )
    (update,) = fake_slack.wait_for_calls("chat.update", 1)
    assert (update.params["channel"], update.params["ts"]) == ("C42", "1700000001.000100")
    assert "Correct: 1" in counts_block(update.params) and "Wrong: 0" in counts_block(update.params)
    (thanks,) = fake_slack.wait_for_calls("chat.postEphemeral", 1)
    assert thanks.params["user"] == "U1" and "Recorded as correct" in thanks.params["text"]
    assert thanks.params["thread_ts"] == "1700000000.000100"

    # U2: "Wrong" → a select of the eight other categories, shown to U2 alone.
    wrong = {"action_id": FEEDBACK_WRONG_ACTION, "block_id": "feedback", "value": "rec1", "type": "button"}
    block_action(bot_url, wrong, user="U2", message=message, response_url="http://127.0.0.1:9/x")
    prompts = fake_slack.wait_for_calls("chat.postEphemeral", 2)
    prompt = prompts[1].params
    blocks = json.loads(prompt["blocks"]) if isinstance(prompt["blocks"], str) else prompt["blocks"]
    select_block = blocks[-1]
    select = select_block["elements"][0]
    assert prompt["user"] == "U2" and select["action_id"] == FEEDBACK_CHOOSE_ACTION
    assert len(select["options"]) == 8 and "sports-watch" not in [o["value"] for o in select["options"]]
    assert store.of_user("rec1", "U2") is None  # nothing stored until a category is chosen

    # U2 chooses "topic-news": stored, acknowledged to U2 (replacing the select), counted on the reply.
    choose = {
        "action_id": FEEDBACK_CHOOSE_ACTION,
        "block_id": select_block["block_id"],
        "type": "static_select",
        "selected_option": {"value": "topic-news", "text": {"type": "plain_text", "text": "x"}},
    }
    block_action(bot_url, choose, user="U2", message=None, ephemeral=True, response_url=fake_slack.response_url("ch1"))
    (ack,) = fake_slack.wait_responses("ch1")
    assert ack["replace_original"] is True and "トピックニュース / Topic News" in ack["text"]
    updates = fake_slack.wait_for_calls("chat.update", 2)
    assert "Correct: 1" in counts_block(updates[1].params) and "Wrong: 1" in counts_block(updates[1].params)
    assert "Topic News ×1" in counts_block(updates[1].params)

    # U2 changes their mind to "peachy": the earlier answer is replaced, not added.
    choose["selected_option"] = {"value": "peachy", "text": {"type": "plain_text", "text": "x"}}
    block_action(bot_url, choose, user="U2", message=None, ephemeral=True, response_url=fake_slack.response_url("ch2"))
    fake_slack.wait_responses("ch2")
    updates = fake_slack.wait_for_calls("chat.update", 3)
    assert "Wrong: 1" in counts_block(updates[2].params) and "Topic News" not in counts_block(updates[2].params)
    u2 = store.of_user("rec1", "U2")
    assert u2 is not None and (u2.predicted, u2.chosen, u2.user) == ("sports-watch", "peachy", "U2")
    assert u2.model_version == "20260101-000000-tiny0001"
    assert store.classification(u2.record_id).body.startswith("日本代表")  # the article: in its record only
    assert [f.user for f in store.for_record("rec1")] == ["U1", "U2"]

    # A second "Wrong" from U2 preselects their earlier choice.
    block_action(bot_url, wrong, user="U2", message=message, response_url="http://127.0.0.1:9/x")
    prompts = fake_slack.wait_for_calls("chat.postEphemeral", 3)
    blocks = (
        json.loads(prompts[2].params["blocks"])
        if isinstance(prompts[2].params["blocks"], str)
        else prompts[2].params["blocks"]
    )
    assert blocks[-1]["elements"][0]["initial_option"]["value"] == "peachy"


def test_feedback_on_an_unknown_record_is_answered_not_stored(
    bot_url: str, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    correct = {"action_id": FEEDBACK_CORRECT_ACTION, "block_id": "feedback", "value": "gone", "type": "button"}
    message = {"type": "message", "ts": "1.1", "text": "x", "blocks": []}
    block_action(bot_url, correct, user="U1", message=message, response_url="http://127.0.0.1:9/x")
    (note,) = fake_slack.wait_for_calls("chat.postEphemeral", 1)
    assert "no longer on record" in note.params["text"]
    assert FeedbackStore(redis_conn).record_ids() == []
    assert fake_slack.calls_to("chat.update") == []


def test_feedback_on_a_record_that_expired_gets_the_same_answer(
    bot_url: str, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    record = ClassificationRecord(
        record_id="expiring", title="見出し", body="本文", url="", slug="smax", model_version="v1", channel="CF"
    )
    classifications.put_classification(redis_conn, record, ttl_s=1)  # RECORD_TTL_DAYS, shortened
    key = ClassificationRecord.key_for("expiring")
    wait_until(lambda: not redis_conn.exists(key), "the record to expire", 5)
    correct = {"action_id": FEEDBACK_CORRECT_ACTION, "block_id": "feedback", "value": "expiring", "type": "button"}
    message = {"type": "message", "ts": "1.3", "text": "x", "blocks": []}
    block_action(bot_url, correct, user="U1", message=message, response_url="http://127.0.0.1:9/x")
    (note,) = fake_slack.wait_for_calls("chat.postEphemeral", 1)
    assert "no longer on record" in note.params["text"]
    assert "expiring" not in FeedbackStore(redis_conn).record_ids()
    assert not redis_conn.exists(classifications.REPLY_SNAPSHOT.key_for("expiring"))
    assert fake_slack.calls_to("chat.update") == []


def test_promote_button_is_checked_on_the_server(bot_url: str, fake_slack: FakeSlack, redis_conn: redis.Redis) -> None:
    promote = {
        "action_id": RETRAIN_PROMOTE_ACTION,
        "block_id": "retrain_promote",
        "value": "20260102-000000-abcdef",
        "type": "button",
    }
    message = {"type": "message", "ts": "1.2", "text": "report", "blocks": []}
    block_action(bot_url, promote, user="UNOBODY", message=message, response_url=fake_slack.response_url("p0"))
    (refusal,) = fake_slack.wait_for_calls("chat.postEphemeral", 1)
    assert "only newsbot admins" in refusal.params["text"]
    assert jobs(redis_conn, "classify") == []

    block_action(bot_url, promote, user=ADMIN, message=message, response_url=fake_slack.response_url("p1"))
    fake_slack.wait_responses("p1")
    ((name, payload),) = jobs(redis_conn, "classify")
    assert (name, payload["version"], payload["user"]) == (ROLLBACK_JOB, "20260102-000000-abcdef", ADMIN)


def test_importing_the_bot_never_imports_torch(tmp_path: Path) -> None:
    import subprocess
    import sys

    from testkit.processes import REPO_ROOT

    code = (
        "import sys, bot.app, bot.listeners, bot.submit, bot.options, bot.admins, bot.context, bot.server, ui, "
        "store.feedback; heavy = [m for m in ('torch', 'transformers', 'worker', 'training') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
