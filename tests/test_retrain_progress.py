"""The /retrain progress message: throttled chat.update, progress kept in Redis, and where base= may point."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from slack_sdk import WebClient

import worker.retrain
from common.exceptions import BaseModelNotFoundError, CorpusError, TrainingStoppedError
from common.jobs import RetrainRequest
from common.settings import Settings
from store import retraining
from testkit.fake_slack import FakeSlack
from testkit.inprocess_worker import worker_settings
from testkit.redis_server import RedisServer
from training.api import TrainOutcome
from training.options import TrainOptions
from training.progress import Progress
from worker import jobs
from worker.classifier import ModelService
from worker.jobs import Runtime
from worker.retrain import ProgressMessage, resolve_base, retrain_options
from worker.slack import SlackReplier


def progress(step: int) -> Progress:
    return Progress("train", step, 10, step / 10, float(step), 10.0 - step, {"eval_accuracy": 0.5}, "")


def message(fake: FakeSlack, conn: redis.Redis, interval_s: float) -> ProgressMessage:
    client = WebClient(token="xoxb-test", base_url=fake.api_url)
    shown = ProgressMessage(client, conn, "C1", "retrain-1", "header", interval_s)
    shown.start()
    return shown


def test_updates_are_throttled_but_progress_is_always_recorded(fake_slack: FakeSlack, redis_conn: redis.Redis) -> None:
    slow = message(fake_slack, redis_conn, interval_s=60)
    for step in range(1, 6):
        slow.report(progress(step))
    assert fake_slack.calls_to("chat.update") == []  # within the interval: the message is left alone
    shown = retraining.training_progress(redis_conn)  # …but /retrain status sees the latest
    assert shown is not None and (shown.job_id, shown.phase, shown.step, shown.accuracy) == (
        "retrain-1",
        "train",
        5,
        0.5,
    )
    assert shown.ts == slow.ts and shown.channel == "C1"
    assert redis_conn.ttl(retraining.TrainingProgress.key_for()) == -1  # kept as long as the training runs
    slow.finish("done", "finished")
    assert [c.params["text"] for c in fake_slack.calls_to("chat.update")] == ["finished"]  # the end always shows
    ended = retraining.training_progress(redis_conn)
    assert ended is not None and (ended.phase, ended.step, ended.total_steps) == ("done", 5, 10)
    assert (
        0 < redis_conn.ttl(retraining.TrainingProgress.key_for()) <= retraining.TRAINING_PROGRESS_TTL_S
    )  # then kept a day

    fake_slack.reset()
    fast = message(fake_slack, redis_conn, interval_s=0)
    assert (
        redis_conn.ttl(retraining.TrainingProgress.key_for()) == -1
    )  # the next training's progress does not expire mid-way
    for step in range(1, 4):
        fast.report(progress(step))
    texts = [c.params["text"] for c in fake_slack.calls_to("chat.update")]
    assert len(texts) == 3 and "step 3/10 (30%)" in texts[-1] and "epoch 0.30" in texts[-1]
    assert len(fake_slack.calls_to("chat.postMessage")) == 1  # one message, updated in place


def test_base_names_resolve_only_inside_the_allowed_folders(tmp_path: Path) -> None:
    base_dir, model_dir = tmp_path / "base", tmp_path / "models"
    (base_dir / "tiny").mkdir(parents=True)
    (model_dir / "20260101-000000-abc123").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (base_dir / "escape").symlink_to(tmp_path / "secret")
    settings = Settings(base_models_dir=base_dir, model_dir=model_dir, base_model="org/default")
    assert resolve_base(None, settings) == "org/default"
    assert resolve_base("tohoku-nlp/bert-base-japanese-v3", settings) == "tohoku-nlp/bert-base-japanese-v3"
    assert resolve_base("tiny", settings) == str((base_dir / "tiny").resolve())
    assert resolve_base("20260101-000000-abc123", settings) == str((model_dir / "20260101-000000-abc123").resolve())
    for name in ("missing", "escape", "..", "."):
        with pytest.raises(BaseModelNotFoundError):
            resolve_base(name, settings)


def test_a_stop_raised_from_the_progress_callback_ends_the_training_and_registers_nothing(tmp_path: Path) -> None:
    from newsmodel.registry import list_versions
    from testkit.fake_corpus import build_text_folder
    from training.api import train
    from training.options import train_options

    corpus = build_text_folder(tmp_path / "corpus", per_class=12)
    models = tmp_path / "models"
    options = train_options(
        data=str(corpus / "text"), cache_dir=tmp_path / "cache", model_dir=models, model_type="linear"
    )
    seen: list[str] = []

    def report(update: Progress) -> None:
        seen.append(update.phase)
        if update.phase == "evaluate":
            raise TrainingStoppedError("UADMIN")

    with pytest.raises(TrainingStoppedError) as stopped:
        train(options, report)
    assert stopped.value.cancelled_by == "UADMIN" and seen[-1] == "evaluate"
    assert list_versions(models) == [] and not [p for p in models.glob("*") if p.is_dir()]


def test_the_running_trainings_lease_is_renewed_only_by_its_holder(redis_conn: redis.Redis) -> None:
    assert retraining.acquire_training_lock(redis_conn, "retrain-a", 6 * 3600)
    assert redis_conn.ttl(retraining.TrainingLock.key_for()) > 6 * 3600  # queued: the job timeout + margin
    assert retraining.hold_training_lock(redis_conn, "retrain-a", 5)
    assert 0 < redis_conn.ttl(retraining.TrainingLock.key_for()) <= 5  # running: the short lease
    assert not retraining.hold_training_lock(redis_conn, "retrain-b", 60, take_if_free=True)  # held by another
    assert retraining.training_lock(redis_conn) == retraining.TrainingLock("retrain-a")
    assert retraining.release_training_lock(redis_conn, "retrain-a")
    assert not retraining.hold_training_lock(redis_conn, "retrain-a", 5)  # released: a heartbeat never takes it back
    assert retraining.training_lock(redis_conn) is None
    assert retraining.hold_training_lock(redis_conn, "retrain-a", 5, take_if_free=True)  # a started job may
    assert retraining.training_lock(redis_conn) == retraining.TrainingLock("retrain-a")


def test_the_progress_header_names_only_the_options_a_training_uses() -> None:
    settings = Settings(_env_file=None, base_model="org/base")  # type: ignore[call-arg]

    def request(**fields: object) -> RetrainRequest:
        return RetrainRequest(request_id="r1", user="UADMIN", channel="C1", **fields)  # type: ignore[arg-type]

    assert retrain_options(request(model_type="linear"), settings) == "type=linear"
    assert retrain_options(request(model_type="linear", force=True), settings) == "type=linear, force"
    assert retrain_options(request(model_type="bert"), settings) == "type=bert, base=org/base, epochs=default"
    assert (
        retrain_options(request(model_type="bert", base_model="<b>", epochs=2.0), settings)
        == "type=bert, base=&lt;b&gt;, epochs=2"
    )


class LockWitness(WebClient):
    """A Slack client (to the fake Slack) that notes, as each message is posted or edited, who holds the training
    lock at that moment."""

    def __init__(self, connection: redis.Redis, base_url: str) -> None:
        super().__init__(token="xoxb-test-token", base_url=base_url)
        self.connection = connection
        self.said: list[tuple[str, retraining.TrainingLock | None]] = []

    def api_call(self, api_method: str, **kwargs: Any) -> Any:
        if api_method in {"chat.postMessage", "chat.update"}:
            text = str((kwargs.get("json") or kwargs.get("params") or {}).get("text", ""))
            self.said.append((text, retraining.training_lock(self.connection)))
        return super().api_call(api_method, **kwargs)


def stopped_by_a_redeploy(options: TrainOptions, report: Callable[[Progress], None]) -> TrainOutcome:
    raise TrainingStoppedError()


def cancelled_by_an_admin(options: TrainOptions, report: Callable[[Progress], None]) -> TrainOutcome:
    raise TrainingStoppedError("UADMIN")


def without_its_data(options: TrainOptions, report: Callable[[Progress], None]) -> TrainOutcome:
    raise CorpusError("no articles in /nonexistent")


def crashing(options: TrainOptions, report: Callable[[Progress], None]) -> TrainOutcome:
    raise RuntimeError("CUDA out of memory")


@pytest.mark.parametrize(
    ("train", "said"),
    [
        (stopped_by_a_redeploy, "Training stopped"),
        (cancelled_by_an_admin, "Training cancelled"),
        (without_its_data, "Training failed"),
        (crashing, "Training failed"),
    ],
    ids=["stopped", "cancelled", "failed", "crashed"],
)
def test_the_lock_is_free_when_the_end_of_a_training_is_said(
    train: Callable[[TrainOptions, Callable[[Progress], None]], TrainOutcome],
    said: str,
    redis_server: RedisServer,
    redis_conn: redis.Redis,
    fake_slack: FakeSlack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An admin who reads "Training stopped … run /retrain again" and does so at once must not be told that a
    training is still running: the lock is released before the progress message says how the training ended."""
    settings = worker_settings(redis_server.url, fake_slack.api_url, tmp_path / "models")
    client = LockWitness(redis_conn, fake_slack.api_url)
    jobs.install(Runtime(settings, redis_conn, ModelService(settings.model_dir, None), SlackReplier(client)))
    monkeypatch.setattr(worker.retrain, "train", train)
    request = RetrainRequest(request_id="retrain-7", user="UADMIN", channel="CTRAIN", model_type="linear")
    assert retraining.acquire_training_lock(redis_conn, "retrain-7", 3600)  # as the bot takes it when it enqueues

    try:
        worker.retrain.retrain(request.to_dict())
    except RuntimeError:
        assert train is crashing  # a crash is re-raised for RQ to record, once it was said

    (text, holder) = client.said[-1]
    assert said in text
    assert holder is None, f"{said!r} was posted while {holder} still held the training lock"
    assert client.said[0][1] == retraining.TrainingLock("retrain-7")  # the progress message, while it was held
    assert retraining.training_lock(redis_conn) is None


def test_a_picture_that_cannot_reach_the_upload_url_never_fails_the_training(tmp_path: Path) -> None:
    """files_upload_v2 sends the PNG to the URL Slack handed out with urllib: a URLError there (an unreachable
    upload host, as in the compose check) is a warning and a report without the picture, not a failed /retrain."""
    from urllib.error import URLError

    from worker.retrain import _upload_png

    png = tmp_path / "confusion_matrix.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")

    class Unreachable:
        def files_upload_v2(self, **_: object) -> None:
            raise URLError("connection refused")

    assert _upload_png(Unreachable(), "C1", "1.1", png, "c.png", "t", "c") is False  # type: ignore[arg-type]
