"""/retrain end to end: bot (HTTP), a classify worker, a train worker, Redis and the fake Slack Web API.

A tiny random-weight BERT is the current model and the base model; the corpus is a small synthetic one in the
official layout. One admin /retrain runs to the end inside the test: its one progress message is updated more
than once, the confusion matrix is uploaded, the guard promotes or keeps, and the classify worker then answers
with the version that is current. Status and rollback are answered through response_url.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus

from newsmodel.registry import current_version
from store import classifications, retraining
from store.classifications import ClassificationRecord
from store.feedback import FeedbackStore
from store.queues import SERIALIZER
from testkit.fake_corpus import build_text_folder
from testkit.fake_slack import Call, FakeSlack
from testkit.processes import product_env, running_stack, seed_registry, wait_serving
from testkit.redis_server import RedisServer
from testkit.slack_requests import SECRET, block_action, slash_command
from ui.ids import FEEDBACK_CORRECT_ACTION, FEEDBACK_WRONG_ACTION, RETRAIN_PROMOTE_ACTION

ADMIN = "UADMIN"
CHANNEL = "CTRAIN"
FIRST_VERSION = "20260101-000000-tiny0001"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServer,
    fake_slack_server: FakeSlack,
    tiny_model: Path,
) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("retrain")
    models = root / "models"
    seed_registry(models, tiny_model, FIRST_VERSION)
    corpus = build_text_folder(root / "corpus", per_class=12)
    # The current model claims a perfect score on this very test split, so the guard must keep it and offer
    # the admin "Promote anyway": both of the guard's outcomes are then exercised (promotion by the button).
    from training.api import DataOptions, prepare

    _, split = prepare(DataOptions(data=str(corpus / "text"), cache_dir=root / "cache"))
    (models / FIRST_VERSION / "metrics.json").write_text(
        json.dumps({"accuracy": 1.0, "macro_f1": 1.0, "test_fingerprint": split.test_fingerprint}), encoding="utf-8"
    )
    redis_server.flush()
    env = product_env(
        REDIS_URL=redis_server.url,
        SLACK_API_URL=fake_slack_server.api_url,
        SLACK_SIGNING_SECRET=SECRET,
        MODEL_DIR=str(models),
        TRAIN_DATA=str(corpus / "text"),
        DATA_CACHE_DIR=str(root / "cache"),
        BASE_MODELS_DIR=str(tiny_model.parent),
        ADMIN_USER_IDS=ADMIN,
        PROGRESS_INTERVAL_S="0",
        MODEL_POLL_INTERVAL_S="0.5",
        CLASSIFY_BATCH_SIZE="4",
    )
    with running_stack(env, root / "run") as (url, procs):
        yield {"url": url, "models": models, "procs": procs}


def classify(stack: dict[str, Any], fake: FakeSlack, name: str) -> dict[str, Any]:
    url = fake.response_url(name)
    slash_command(
        stack["url"], "/classify-news", "日本代表は試合終了間際のゴールで勝利した。", user="U1", response_url=url
    )
    return fake.wait_response(name)


def test_classify_news_answers_through_response_url_with_feedback_buttons(
    stack: dict[str, Any], fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    answer = classify(stack, fake_slack, "classify")
    assert answer["response_type"] == "in_channel"  # the CLASSIFY_RESPONSE_TYPE default
    assert FIRST_VERSION in json.dumps(answer, ensure_ascii=False)
    buttons = [e for b in answer["blocks"] if b["type"] == "actions" for e in b["elements"]]
    by_action = {b["action_id"]: b["value"] for b in buttons if not b["action_id"].startswith("feedback_pick")}
    assert set(by_action) == {FEEDBACK_CORRECT_ACTION, FEEDBACK_WRONG_ACTION}  # (an unsure one asks "which desk?")
    record_id = by_action[FEEDBACK_CORRECT_ACTION]
    assert classifications.get_classification(redis_conn, record_id).model_version == FIRST_VERSION

    # A click on that very reply is stored against the worker's record.
    message = {"type": "message", "ts": "1700000009.000100", "text": answer["text"], "blocks": answer["blocks"]}
    click = {"action_id": FEEDBACK_CORRECT_ACTION, "block_id": "x", "value": record_id, "type": "button"}
    block_action(stack["url"], click, user="U9", message=message, response_url=fake_slack.response_url("fb"))
    (update,) = fake_slack.wait_for_calls("chat.update", 1)
    assert "Correct: 1" in json.dumps(update.params, ensure_ascii=False)
    feedback = FeedbackStore(redis_conn).of_user(record_id, "U9")
    assert feedback is not None and feedback.correct


def progress_updates(fake: FakeSlack, ts: str) -> list[Call]:
    return [c for c in fake.calls_to("chat.update") if c.params.get("ts") == ts]


def test_admin_retrain_runs_to_the_end_then_status_and_rollback(
    stack: dict[str, Any], fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    models: Path = stack["models"]
    # An editor's correction (an admin's: used without review), to be used as an extra training example; its
    # record is not among the editor-confirmed ones held out of training (store.trust.in_holdout).
    record = ClassificationRecord(
        record_id="rec-y",
        title="",
        body="新型スマートフォンの料金プランが発表された。",
        url="",
        slug="peachy",
        model_version=FIRST_VERSION,
        channel=CHANNEL,
    )
    classifications.put_classification(redis_conn, record)
    FeedbackStore(redis_conn).record("rec-y", ADMIN, "smax")

    slash_command(
        stack["url"],
        "/retrain",
        "epochs=1 base=tiny-bert",
        user=ADMIN,
        channel=CHANNEL,
        response_url=fake_slack.response_url("r1"),
    )
    assert "Training queued" in fake_slack.wait_response("r1", timeout=15)["text"]
    # A second /retrain while the first is queued or running starts nothing.
    slash_command(
        stack["url"], "/retrain", "force", user=ADMIN, channel=CHANNEL, response_url=fake_slack.response_url("r2")
    )
    assert "already" in fake_slack.wait_response("r2", timeout=15)["text"]
    (train_job_id,) = [k.decode().removeprefix("rq:job:") for k in redis_conn.keys("rq:job:retrain-*")]
    # /retrain status meanwhile shows the training in hand.
    slash_command(
        stack["url"], "/retrain", "status", user=ADMIN, channel=CHANNEL, response_url=fake_slack.response_url("s0")
    )
    during = fake_slack.wait_response("s0", timeout=30)["text"]
    assert f"`{train_job_id}`" in during and "No training in progress" not in during
    assert f"`{FIRST_VERSION}`" in during  # the current model, still serving

    # One progress message in the channel, updated in place until it says "Done".
    (post,) = fake_slack.wait_for_calls("chat.postMessage", 1, timeout=30)
    assert post.params["channel"] == CHANNEL and "Retraining" in post.params["text"]
    job = Job.fetch(train_job_id, connection=redis_conn, serializer=SERIALIZER)
    fake_slack.wait_for(lambda f: job.get_status() in (JobStatus.FINISHED, JobStatus.FAILED), timeout=180)
    updates = [c for c in fake_slack.calls_to("chat.update") if c.params.get("channel") == CHANNEL]
    assert len({c.params["ts"] for c in updates}) == 1, "one message, updated in place"
    final = updates[-1].params["text"]
    assert "Done" in final, final
    assert len(updates) >= 3  # progress shown more than once before the result
    assert any("Training" in c.params["text"] and "step" in c.params["text"] for c in updates[:-1])
    assert len([c for c in fake_slack.calls_to("chat.postMessage") if c.params.get("channel") == CHANNEL]) == 1

    ts = updates[-1].params["ts"]
    result: dict[str, Any] = job.return_value() or {}
    new_version = result["version"]
    assert f"`{new_version}`" in final
    assert "1 used" in final and result["extra_examples_used"] == 1
    assert "accuracy" in final and "macro-F1" in final and FIRST_VERSION in final

    # The confusion matrix, the reliability diagram and the precision-coverage curve were uploaded (files_upload_v2:
    # get URL, upload the PNG, complete in the channel).
    completes = fake_slack.wait_for_calls("files.completeUploadExternal", 3)
    assert [c.params.get("channel_id") for c in completes] == [CHANNEL, CHANNEL, CHANNEL]
    assert len([data for data in fake_slack.uploads.values() if data.startswith(PNG_MAGIC)]) == 3
    assert result["uploaded_reliability_diagram"] is True and result["uploaded_coverage_curve"] is True
    assert "Sure bar" in final and "ECE" in final
    assert retraining.training_lock(redis_conn) is None  # the next /retrain may start

    # The guard keeps the current model (it claims a perfect score on the same test split), says so, and offers
    # an admin the button; a non-admin's click changes nothing; the admin's click promotes.
    assert result["promoted"] is False
    assert "Not promoted" in final and current_version(models) == FIRST_VERSION
    blocks = (
        json.loads(updates[-1].params["blocks"])
        if isinstance(updates[-1].params["blocks"], str)
        else updates[-1].params["blocks"]
    )
    (button,) = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert (button["action_id"], button["value"]) == (RETRAIN_PROMOTE_ACTION, new_version)
    message = {"type": "message", "ts": ts, "text": final, "blocks": blocks}
    block_action(
        stack["url"],
        button,
        user="UNOBODY",
        message=message,
        channel=CHANNEL,
        response_url=fake_slack.response_url("promote-denied"),
    )
    fake_slack.wait_for(lambda f: any(c.params.get("user") == "UNOBODY" for c in f.calls_to("chat.postEphemeral")))
    refusal = next(c for c in fake_slack.calls_to("chat.postEphemeral") if c.params.get("user") == "UNOBODY")
    assert "only newsbot admins" in refusal.params["text"]
    assert not fake_slack.responses("promote-denied") and current_version(models) == FIRST_VERSION
    block_action(
        stack["url"],
        button,
        user=ADMIN,
        message=message,
        channel=CHANNEL,
        response_url=fake_slack.response_url("promote"),
    )
    assert new_version in fake_slack.wait_response("promote")["text"]
    fake_slack.wait_for(lambda f: current_version(models) == new_version, timeout=30)

    # The classify worker reloads the new version and answers with it.
    wait_serving(redis_conn, new_version)
    assert new_version in json.dumps(classify(stack, fake_slack, "after-train"), ensure_ascii=False)

    # /retrain status: the current model, what the worker serves, no training in progress.
    slash_command(
        stack["url"], "/retrain", "status", user=ADMIN, channel=CHANNEL, response_url=fake_slack.response_url("status")
    )
    status = fake_slack.wait_response("status")["text"]
    assert f"`{new_version}`" in status and "← current" in status
    assert "No training in progress" in status and FIRST_VERSION in status

    # /retrain rollback: back to the first version; the worker reloads it and answers with it.
    slash_command(
        stack["url"],
        "/retrain",
        "rollback " + FIRST_VERSION,
        user=ADMIN,
        channel=CHANNEL,
        response_url=fake_slack.response_url("rollback"),
    )
    rolled = fake_slack.wait_response("rollback")["text"]
    assert f"`{FIRST_VERSION}` is now current" in rolled
    assert current_version(models) == FIRST_VERSION
    wait_serving(redis_conn, FIRST_VERSION)
    assert FIRST_VERSION in json.dumps(classify(stack, fake_slack, "after-rollback"), ensure_ascii=False)

    # Rolling back to a version that does not exist changes nothing and says why.
    slash_command(
        stack["url"],
        "/retrain",
        "rollback 20990101-000000-abcdef",
        user=ADMIN,
        channel=CHANNEL,
        response_url=fake_slack.response_url("rollback-bad"),
    )
    assert "Could not switch" in fake_slack.wait_response("rollback-bad")["text"]
    assert current_version(models) == FIRST_VERSION
    assert Queue("train", connection=redis_conn, serializer=SERIALIZER).count == 0
