"""A newsroom's own categories served end to end: real bot (HTTP), classify worker, train worker, Redis, fake Slack.

The registry starts with the tiny nine-label livedoor BERT as current; TRAIN_DATA is the synthetic four-desk
newsroom (testkit/newsroom.py) as CSV, LABELS_FILE gives the desks' Japanese and English names. An admin's signed
``/retrain type=linear force`` trains and promotes the 4-desk model; the classify worker hot-reloads it; a mention
is answered with a desk's display names; "Wrong" offers exactly the three other desks (the bot builds the select
from the classification record); the choice is stored, refused when it is not one of the record's labels, and
exported by ``python -m training feedback export`` as a dataset row that the dataset loader reads. ``/retrain
rollback`` switches to the livedoor model and back, and replies follow each time.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from rq.job import Job, JobStatus

from common.labels import LIVEDOOR, SLUGS, LabelSet
from newsmodel.registry import current_version
from store import classifications, serving
from store.feedback import FeedbackStore
from store.queues import SERIALIZER
from store.record import as_str
from testkit.fake_slack import FakeSlack
from testkit.newsroom import LABEL_NAMES, LABELS, newsroom_rows, write_csv, write_jsonl
from testkit.processes import REPO_ROOT, product_env, running_stack, seed_registry, wait_serving
from testkit.redis_server import RedisServer
from testkit.signing import event_body, slack_signature_headers
from testkit.slack_requests import SECRET, block_action, slash_command
from training.dataset import load_labelled
from ui.ids import FEEDBACK_CHOOSE_ACTION, FEEDBACK_CORRECT_ACTION, FEEDBACK_WRONG_ACTION

ADMIN = "UADMIN"
CHANNEL = "CNEWS"
FIRST_VERSION = "20260101-000000-tiny0001"
DESKS = LabelSet(tuple(sorted(LABELS)), LABEL_NAMES)
ECONOMY = "日銀は金利の見通しを発表し、日経平均株価は続伸した。アナリストは慎重な見方を示した。"
SPORTS = "日本代表は決勝戦で逆転勝利を収め、ファンから大きな声援が送られた。チームは連勝を伸ばした。"


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, fake_slack_server: FakeSlack, tiny_model: Path
) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("newsroom-serving")
    models = root / "models"
    seed_registry(models, tiny_model, FIRST_VERSION)
    data = write_csv(root / "desks.csv", newsroom_rows(per_label=20))
    labels_file = root / "labels.json"
    labels_file.write_text(json.dumps(LABEL_NAMES, ensure_ascii=False), encoding="utf-8")
    redis_server.flush()
    env = product_env(
        REDIS_URL=redis_server.url,
        SLACK_API_URL=fake_slack_server.api_url,
        SLACK_SIGNING_SECRET=SECRET,
        MODEL_DIR=str(models),
        TRAIN_DATA=str(data),
        LABELS_FILE=str(labels_file),
        DATA_CACHE_DIR=str(root / "cache"),
        BASE_MODELS_DIR=str(tiny_model.parent),
        ADMIN_USER_IDS=ADMIN,
        PROGRESS_INTERVAL_S="0",
        MODEL_POLL_INTERVAL_S="0.5",
    )
    with running_stack(env, root / "run") as (url, _):
        yield {"url": url, "models": models, "env": env, "root": root}


# -- driving it ------------------------------------------------------------------------------------------------


def blocks_of(params: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = params.get("blocks") or []
    return json.loads(blocks) if isinstance(blocks, str) else list(blocks)


_mentions = iter(range(1, 1000))


def mention(stack: dict[str, Any], fake: FakeSlack, text: str) -> dict[str, Any]:
    """A signed app_mention; the worker's reply in its thread (chat.postMessage)."""
    n = next(_mentions)
    ts = f"1700000100.{n:06d}"
    event = {"type": "app_mention", "user": "U1", "text": f"<@UBOT> {text}", "ts": ts, "channel": CHANNEL,
             "event_ts": ts}  # fmt: skip
    body = event_body(event, event_id=f"EvNews{n:04d}")
    headers = {"Content-Type": "application/json", **slack_signature_headers(body, SECRET)}
    assert httpx.post(stack["url"], content=body, headers=headers, timeout=10).status_code == 200
    fake.wait_for(lambda f: any(c.params.get("thread_ts") == ts for c in f.calls_to("chat.postMessage")), timeout=60)
    return next(c.params for c in fake.calls_to("chat.postMessage") if c.params.get("thread_ts") == ts)


def record_id_of(reply: dict[str, Any]) -> str:
    buttons = [e for b in blocks_of(reply) if b["type"] == "actions" for e in b["elements"]]
    return str(next(b["value"] for b in buttons if b["action_id"] == FEEDBACK_WRONG_ACTION))


def admin_command(stack: dict[str, Any], fake: FakeSlack, text: str, name: str, timeout: float = 60) -> str:
    slash_command(stack["url"], "/retrain", text, user=ADMIN, channel=CHANNEL, response_url=fake.response_url(name))
    return str(fake.wait_response(name, timeout)["text"])


def wrong_select(stack: dict[str, Any], fake: FakeSlack, reply: dict[str, Any], user: str) -> dict[str, Any]:
    """Click "Wrong" on ``reply`` as ``user``: the select the bot offered them (the ephemeral's last block)."""
    before = len(fake.calls_to("chat.postEphemeral"))
    message = {"type": "message", "ts": reply["thread_ts"], "text": reply["text"], "blocks": blocks_of(reply)}
    click = {"action_id": FEEDBACK_WRONG_ACTION, "block_id": "feedback-0", "value": record_id_of(reply),
             "type": "button"}  # fmt: skip
    block_action(stack["url"], click, user=user, message=message, channel=CHANNEL, response_url=fake.response_url("x"))
    prompt = fake.wait_for_calls("chat.postEphemeral", before + 1)[before].params
    assert prompt["user"] == user
    return blocks_of(prompt)[-1]


def choose(stack: dict[str, Any], fake: FakeSlack, select_block: dict[str, Any], value: str, name: str) -> str:
    action = {
        "action_id": FEEDBACK_CHOOSE_ACTION,
        "block_id": select_block["block_id"],
        "type": "static_select",
        "selected_option": {"value": value, "text": {"type": "plain_text", "text": value}},
    }
    block_action(
        stack["url"], action, user="U7", message=None, channel=CHANNEL, ephemeral=True,
        response_url=fake.response_url(name),
    )  # fmt: skip
    return str(fake.wait_response(name)["text"])


def named_desks(text: str) -> list[str]:
    return [label for label in DESKS if DESKS.display(label) in text]


# -- the test --------------------------------------------------------------------------------------------------


def test_a_newsroom_model_is_trained_served_corrected_exported_and_rolled_back(
    stack: dict[str, Any], fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    models: Path = stack["models"]
    store = FeedbackStore(redis_conn)

    # Before: the nine-label livedoor model answers, and its records carry livedoor's labels.
    wait_serving(redis_conn, FIRST_VERSION)
    livedoor_reply = mention(stack, fake_slack, SPORTS)
    assert sum(f"`{slug}`" in livedoor_reply["text"] for slug in SLUGS) == 1
    assert store.classification(record_id_of(livedoor_reply)).label_set == LIVEDOOR

    # An admin retrains on the newsroom's CSV (TRAIN_DATA) with its names (LABELS_FILE): a linear model of other
    # categories is promoted only because of `force`.
    queued = admin_command(stack, fake_slack, "type=linear force", "train", timeout=15)
    assert "Training queued" in queued
    (job_key,) = redis_conn.keys("rq:job:retrain-*")
    job = Job.fetch(as_str(job_key).removeprefix("rq:job:"), connection=redis_conn, serializer=SERIALIZER)
    fake_slack.wait_for(lambda f: job.get_status() in (JobStatus.FINISHED, JobStatus.FAILED), timeout=180)
    result: dict[str, Any] = job.return_value() or {}
    assert result.get("promoted") is True, result
    desks_version = str(result["version"])
    assert current_version(models) == desks_version
    report = [c for c in fake_slack.calls_to("chat.update") if c.params.get("channel") == CHANNEL][-1].params["text"]
    assert "New model's labels (4): スポーツ / Sports, テクノロジー / Tech, 政治 / Politics, 経済 / Economy" in report

    # The classify worker hot-reloads it and publishes its labels with their names.
    serving = wait_serving(redis_conn, desks_version)
    assert serving.labels == DESKS.labels and serving.model is not None and serving.model.label_set == DESKS

    # A mention is answered with one desk's display names, and its record carries the desks.
    reply = mention(stack, fake_slack, ECONOMY)
    assert len(named_desks(reply["text"])) == 1, reply["text"]
    assert not any(f"`{slug}`" in reply["text"] for slug in SLUGS)
    record = store.classification(record_id_of(reply))
    assert record.label_set == DESKS and record.slug == "経済" and record.model_version == desks_version
    assert f"*{DESKS.display(record.slug)}* (`{record.slug}`)" in reply["text"]

    # "Wrong" offers exactly the three other desks, by their names.
    select_block = wrong_select(stack, fake_slack, reply, "U7")
    options = select_block["elements"][0]["options"]
    others = [label for label in DESKS if label != record.slug]
    assert [o["value"] for o in options] == others
    assert [o["text"]["text"] for o in options] == [DESKS.display(label) for label in others]

    # A livedoor slug is not one of this record's labels: refused, nothing stored. One of the desks is stored.
    refused = choose(stack, fake_slack, select_block, "sports-watch", "choose-slug")
    assert "not one of the categories" in refused and store.of_user(record.record_id, "U7") is None
    chosen = others[0]
    thanks = choose(stack, fake_slack, select_block, chosen, "choose-desk")
    assert f"*{DESKS.display(chosen)}*" in thanks
    answer = store.of_user(record.record_id, "U7")
    assert answer is not None and (answer.predicted, answer.chosen) == (record.slug, chosen)

    # Someone confirms another answer.
    confirmed = mention(stack, fake_slack, SPORTS)
    confirmed_record = store.classification(record_id_of(confirmed))
    click = {"action_id": FEEDBACK_CORRECT_ACTION, "block_id": "feedback-0", "value": confirmed_record.record_id,
             "type": "button"}  # fmt: skip
    message = {
        "type": "message",
        "ts": confirmed["thread_ts"],
        "text": confirmed["text"],
        "blocks": blocks_of(confirmed),
    }
    block_action(
        stack["url"], click, user="U8", message=message, channel=CHANNEL, response_url=fake_slack.response_url("c")
    )
    fake_slack.wait_for(lambda f: store.of_user(confirmed_record.record_id, "U8") is not None, timeout=30)

    # `python -m training feedback export` writes both as dataset rows (title, text, label) ...
    exported = stack["root"] / "feedback.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "training", "feedback", "export", "--out", str(exported)],
        env=stack["env"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == {
        "corrections": 1, "confirmations": 1, "skipped": 0, "path": str(exported)
    }  # fmt: skip
    rows = {row["record_id"]: row for row in map(json.loads, exported.read_text(encoding="utf-8").splitlines())}
    correction, confirmation = rows[record.record_id], rows[confirmed_record.record_id]
    assert (correction["label"], correction["feedback"], correction["predicted"]) == (chosen, "correction", record.slug)
    assert correction["text"] == ECONOMY and correction["title"] == ""
    assert (confirmation["label"], confirmation["feedback"]) == (confirmed_record.slug, "confirmation")
    # ... that the dataset loader reads, added to the newsroom's own file.
    extended = write_jsonl(stack["root"] / "desks-and-feedback.jsonl", [*newsroom_rows(per_label=20), *rows.values()])
    data = load_labelled(str(extended))
    assert data.labels.labels == DESKS.labels and len(data.articles) == 82

    # Roll back to the livedoor model: serving follows and replies use livedoor's labels again.
    assert f"`{FIRST_VERSION}` is now current" in admin_command(stack, fake_slack, f"rollback {FIRST_VERSION}", "rb1")
    wait_serving(redis_conn, FIRST_VERSION)
    back = mention(stack, fake_slack, ECONOMY)
    assert sum(f"`{slug}`" in back["text"] for slug in SLUGS) == 1 and not named_desks(back["text"])
    assert store.classification(record_id_of(back)).label_set == LIVEDOOR
    assert len(wrong_select(stack, fake_slack, back, "U9")["elements"][0]["options"]) == 8
    # A "Wrong" on the earlier desk reply still offers the desks: the record, not the model served now, decides.
    assert [o["value"] for o in wrong_select(stack, fake_slack, reply, "U9")["elements"][0]["options"]] == others

    # And forward again to the desks.
    assert f"`{desks_version}` is now current" in admin_command(stack, fake_slack, f"rollback {desks_version}", "rb2")
    wait_serving(redis_conn, desks_version)
    again = mention(stack, fake_slack, ECONOMY)
    assert len(named_desks(again["text"])) == 1
    assert store.classification(record_id_of(again)).label_set == DESKS

    # /retrain status names the current model's labels.
    status = admin_command(stack, fake_slack, "status", "status")
    assert "ラベル / Labels (4): スポーツ / Sports" in status and "政治 / Politics" in status


def test_routes_name_the_labels_the_workers_serve(
    stack: dict[str, Any], fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    """`/classify-news route <label> #desk` accepts the served model's labels (as the workers publish them)."""
    serving = wait_serving(redis_conn, current_version(stack["models"]))
    assert serving.labels == DESKS.labels

    def route(text: str) -> str:
        answer = slash_command(
            stack["url"], "/classify-news", text, user=ADMIN, channel=CHANNEL, response_url=fake_slack.response_url("r")
        )
        return str(answer.json().get("text", ""))

    refused = route("route sports-watch <#CDESK|desk>")
    assert "no label `sports-watch`" in refused and "`経済`" in refused
    assert "Checking" in route("route 経済 <#CDESK|desk>")


# -- the pieces, without processes ---------------------------------------------------------------------------


def test_records_and_serving_states_carry_label_sets_and_read_earlier_ones(redis_conn: redis.Redis) -> None:
    odd = LabelSet(("R&D, lab", "<!channel>"), {"R&D, lab": {"en": "Research & <b>"}})
    record = classifications.ClassificationRecord("r1", "t", "b", "", "R&D, lab", "v1", "C1", labels=odd)
    classifications.put_classification(redis_conn, record)
    assert classifications.get_classification(redis_conn, "r1") == record
    # A record written before records carried labels: livedoor's.
    redis_conn.hset("newsbot:classification:old", mapping={"title": "", "body": "b", "slug": "smax"})
    assert classifications.get_classification(redis_conn, "old").labels is None
    assert classifications.get_classification(redis_conn, "old").label_set == LIVEDOOR

    published = serving.ServingState("w1", "v1", labels=odd.labels, label_names=odd.names)
    serving.publish_serving_state(redis_conn, published, 5.0)
    (read,) = serving.serving_states(redis_conn)
    assert read == published and read.model is not None and read.model.label_set == odd  # a comma in a label
    redis_conn.hset(serving.ServingState.key_for("w0"), mapping={"version": "v0", "labels": ",".join(SLUGS)})
    earlier = next(s for s in serving.serving_states(redis_conn) if s.worker == "w0")
    assert earlier.labels == SLUGS and earlier.model is not None and earlier.model.label_set == LIVEDOOR


def test_feedback_is_checked_against_the_records_labels_and_exported_as_a_dataset(redis_conn: redis.Redis) -> None:
    from common.exceptions import UnknownCategoryError

    store = FeedbackStore(redis_conn)
    put = classifications.put_classification
    put(
        redis_conn,
        classifications.ClassificationRecord("d1", "見出し", "本文です。", "", "経済", "v2", "C1", labels=DESKS),
    )
    put(
        redis_conn, classifications.ClassificationRecord("d2", "", "政治の記事。", "", "政治", "v2", "C1", labels=DESKS)
    )
    put(
        redis_conn, classifications.ClassificationRecord("d3", "見出しだけ", "", "", "テック", "v2", "C1", labels=DESKS)
    )
    put(redis_conn, classifications.ClassificationRecord("l1", "", "映画の記事。", "", "smax", "v1", "C1"))
    with pytest.raises(UnknownCategoryError):
        store.record("d1", "U1", "smax")  # a livedoor slug is not a desk
    with pytest.raises(UnknownCategoryError):
        store.record("l1", "U1", "政治")  # nor a desk a livedoor category
    store.record("d1", "U1", "政治")
    store.record("d1", "U2", "政治")
    store.record("d1", "U3", "経済")  # outvoted: a correction to 政治
    store.record("d2", "U1", "政治")  # a confirmation
    store.record("d3", "U1", "スポーツ")  # a title only: the title is the text
    store.record("l1", "U1", "movie-enter")
    buffer = io.StringIO()
    summary = store.export_dataset(buffer)
    assert (summary.corrections, summary.confirmations, summary.skipped) == (3, 1, 0)
    rows = {row["record_id"]: row for row in map(json.loads, buffer.getvalue().splitlines())}
    assert {k: (r["title"], r["text"], r["label"], r["feedback"], r["votes"]) for k, r in rows.items()} == {
        "d1": ("見出し", "本文です。", "政治", "correction", 2),
        "d2": ("", "政治の記事。", "政治", "confirmation", 1),
        "d3": ("", "見出しだけ", "スポーツ", "correction", 1),
        "l1": ("", "映画の記事。", "movie-enter", "correction", 1),
    }
    redis_conn.delete("newsbot:classification:d3")  # gone (it cannot be: it has feedback; but a flushed Redis)
    assert store.export_dataset(io.StringIO()).skipped == 1


def test_the_training_cli_loads_redis_only_for_feedback_export() -> None:
    code = (
        "import sys; from training import cli; cli._parser().parse_args(['models', 'list']); "
        "print(sorted(m for m in ('redis', 'store.feedback', 'store.classifications') if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=product_env(), cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("kind", ["csv", "jsonl", "folder"])
def test_train_data_and_labels_file_settings_reach_the_training_options(kind: str, tmp_path: Path) -> None:
    from common.settings import Settings
    from testkit.newsroom import write_label_folders
    from training.api import prepare_data
    from training.options import options_from_settings

    rows = newsroom_rows(per_label=12)
    if kind == "csv":
        path = write_csv(tmp_path / "d.csv", rows)
    elif kind == "jsonl":
        path = write_jsonl(tmp_path / "d.jsonl", rows)
    else:
        path = write_label_folders(tmp_path / "d", rows)
    labels_file = tmp_path / "labels.json"
    labels_file.write_text(json.dumps(LABEL_NAMES, ensure_ascii=False), encoding="utf-8")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, train_data=str(path), labels_file=labels_file, data_cache_dir=tmp_path / "cache"
    )
    data, split = prepare_data(options_from_settings(settings, model_dir=tmp_path / "models").data)
    assert data.kind == kind and data.labels == DESKS and len(data.articles) == 48
    assert len(split.test) == 4
