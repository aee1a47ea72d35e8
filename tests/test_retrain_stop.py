"""A /retrain that does not run to its end: stopped by a redeploy, killed, cancelled by an admin, or failing.

Real processes: the bot over signed HTTP, a train worker (``python -m worker --queues train``) per test, the
private redis-server and the fake Slack Web API. The training is a tiny BERT on a synthetic corpus with many
epochs, slow enough to be caught in the middle of its steps.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from newsmodel.registry import current_version
from store import retraining
from testkit.fake_corpus import build_text_folder
from testkit.fake_slack import FakeSlack
from testkit.processes import Proc, product_env, running_bot, seed_registry, start_worker
from testkit.redis_server import RedisServer
from testkit.slack_requests import SECRET, slash_command
from testkit.waiting import wait_until
from worker.retrain import CANCEL_POLL_S

ADMIN = "UADMIN"
CHANNEL = "CTRAIN"
FIRST_VERSION = "20260101-000000-tiny0001"
LOCK_TTL_S = 3  # TRAINING_LOCK_TTL_S of the train workers here (60 s by default)
SLOW = "epochs=20 base=tiny-bert"  # 20 epochs of the tiny BERT: minutes of steps on this machine


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServer,
    fake_slack_server: FakeSlack,
    tiny_model: Path,
) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("retrain-stop")
    models = root / "models"
    seed_registry(models, tiny_model, FIRST_VERSION)
    corpus = build_text_folder(root / "corpus", per_class=40)
    env = product_env(
        REDIS_URL=redis_server.url,
        SLACK_API_URL=fake_slack_server.api_url,
        SLACK_SIGNING_SECRET=SECRET,
        MODEL_DIR=str(models),
        TRAIN_DATA=str(corpus / "text"),
        DATA_CACHE_DIR=str(root / "cache"),
        TRAIN_RUN_DIR=str(root / "runs"),
        BASE_MODELS_DIR=str(tiny_model.parent),
        ADMIN_USER_IDS=ADMIN,
        PROGRESS_INTERVAL_S="0",
        TRAINING_LOCK_TTL_S=str(LOCK_TTL_S),
    )
    with running_bot(env, root / "run") as url:
        yield {"url": url, "models": models, "env": env, "root": root}


def start_train_worker(stack: dict[str, Any], name: str = "train-worker") -> Proc:
    return start_worker(stack["env"], stack["root"] / "run", "--queues", "train", name=name)


def stop_train_worker(proc: Proc) -> None:
    children = descendants(proc.popen.pid)
    proc.stop()
    for pid in children:  # RQ's scheduler process, orphaned when its worker was killed
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def train_worker(stack: dict[str, Any], redis_conn: redis.Redis) -> Iterator[Proc]:
    proc = start_train_worker(stack)
    try:
        yield proc
    finally:
        stop_train_worker(proc)


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found.extend(children)
        frontier.extend(children)
    return found


def versions(models: Path) -> list[str]:
    return sorted(p.name for p in models.iterdir())


def command(stack: dict[str, Any], fake: FakeSlack, text: str, name: str, user: str = ADMIN) -> str:
    """``/retrain <text>`` over signed HTTP; the ephemeral answer's text."""
    slash_command(stack["url"], "/retrain", text, user=user, channel=CHANNEL, response_url=fake.response_url(name))
    fake.wait_for(lambda f: bool(f.responses(name)), timeout=15)
    return str(fake.responses(name)[0]["text"])


def start_training(stack: dict[str, Any], fake: FakeSlack, conn: redis.Redis, name: str) -> str:
    """A slow /retrain, returned once its worker is in the training steps; its job id."""
    assert "Training queued" in command(stack, fake, SLOW, name)
    lock = retraining.training_lock(conn)
    assert lock is not None

    def in_its_steps() -> bool:
        progress = retraining.training_progress(conn)
        return (
            progress is not None and progress.job_id == lock.job_id and progress.phase == "train" and progress.step > 0
        )

    wait_until(
        in_its_steps, "the training to reach its steps", 120, details=lambda: str(retraining.training_progress(conn))
    )
    progress = retraining.training_progress(conn)
    assert progress is not None and progress.total_steps > progress.step + 20, "too fast to be caught mid-way"
    return lock.job_id


def progress_texts(fake: FakeSlack) -> list[str]:
    return [str(c.params.get("text", "")) for c in fake.calls_to("chat.update") if c.params.get("channel") == CHANNEL]


def wait_text(fake: FakeSlack, needle: str, timeout: float = 60) -> str:
    fake.wait_for(lambda f: any(needle in t for t in progress_texts(f)), timeout=timeout)
    return next(t for t in progress_texts(fake) if needle in t)


def wait_no_lock(conn: redis.Redis, timeout: float) -> float:
    """Seconds until the training lock is gone (AssertionError after ``timeout``)."""
    started = time.monotonic()
    wait_until(
        lambda: retraining.training_lock(conn) is None,
        "the training lock to be released",
        timeout,
        details=lambda: f"held by {retraining.training_lock(conn)}",
    )
    return time.monotonic() - started


def test_sigterm_stops_the_training_frees_the_lock_and_says_so(
    stack: dict[str, Any], fake_slack: FakeSlack, redis_conn: redis.Redis, train_worker: Proc
) -> None:
    models: Path = stack["models"]
    before, current = versions(models), current_version(models)
    job_id = start_training(stack, fake_slack, redis_conn, "term")
    assert 0 < redis_conn.ttl(retraining.TrainingLock.key_for()) <= LOCK_TTL_S  # the running training's short lease

    train_worker.signal(signal.SIGTERM)  # docker compose stop / a redeploy
    stopped = wait_text(fake_slack, "Training stopped", timeout=30)
    assert "学習を中断しました" in stopped and "/retrain" in stopped and "again" in stopped
    assert retraining.training_lock(redis_conn) is None
    train_worker.wait_exit(30)  # then the worker exits (a warm shutdown)
    assert train_worker.log().count("Scheduler for train started") <= 1  # none started again while stopping
    progress = retraining.training_progress(redis_conn)
    assert progress is not None and (progress.job_id, progress.phase) == (job_id, "stopped")
    assert current_version(models) == current and versions(models) == before
    # One message, edited in place.
    assert len({c.params["ts"] for c in fake_slack.calls_to("chat.update")}) == 1


def test_a_killed_train_workers_lock_lapses_and_the_next_train_worker_reports_it_lost(
    stack: dict[str, Any], fake_slack: FakeSlack, redis_conn: redis.Redis, train_worker: Proc
) -> None:
    job_id = start_training(stack, fake_slack, redis_conn, "kill")
    # Time itself is what is tested here: past the lock's TTL (by a second, more than the heartbeat interval of
    # LOCK_TTL_S / 3), a lock that nothing renewed would have lapsed. The heartbeat keeps it.
    time.sleep(LOCK_TTL_S + 1)
    held = retraining.training_lock(redis_conn)
    assert held is not None and held.job_id == job_id
    (message_ts,) = {c.params["ts"] for c in fake_slack.calls_to("chat.update") if job_id in c.params["text"]}

    train_worker.signal(signal.SIGKILL)  # out of memory, power cut: nothing runs any more
    train_worker.wait_exit(10)
    killed_at = time.monotonic()
    waited = wait_no_lock(redis_conn, timeout=LOCK_TTL_S + 2)
    assert waited <= LOCK_TTL_S + 1
    assert "Training queued" in command(stack, fake_slack, "type=linear", "after-kill")
    assert not any("Training lost" in t for t in progress_texts(fake_slack))  # nobody could say so yet

    # The train worker comes back (compose restarts it): its maintenance finds the job abandoned, and the
    # killed training's own progress message says it was lost; then the queued training runs.
    replacement = start_train_worker(stack, name="train-worker-restarted")
    try:
        lost = wait_text(fake_slack, "Training lost", timeout=60)
        lost_after = time.monotonic() - killed_at
        (edit,) = [c for c in fake_slack.calls_to("chat.update") if "Training lost" in c.params["text"]]
        assert edit.params["ts"] == message_ts and job_id in lost
        assert "学習が中断されました" in lost and "current model keeps serving" in lost and "/retrain" in lost
        assert lost_after < 45, f"reported lost {lost_after:.0f}s after the kill"
        wait_text(fake_slack, "Done", timeout=120)  # the linear training queued meanwhile
        wait_no_lock(redis_conn, timeout=10)
    finally:
        stop_train_worker(replacement)
    assert "abandoned by its worker" in replacement.log()


def test_retrain_cancel_stops_the_training_at_its_next_step(
    stack: dict[str, Any], fake_slack: FakeSlack, redis_conn: redis.Redis, train_worker: Proc
) -> None:
    models: Path = stack["models"]
    before, current = versions(models), current_version(models)
    job_id = start_training(stack, fake_slack, redis_conn, "slow")

    refused = command(stack, fake_slack, "cancel", "cancel-nobody", user="UNOBODY")
    assert "only newsbot admins" in refused
    # Until the training has reported a step more than CANCEL_POLL_S after the refusal: its guard has looked for
    # a cancel since then (at most every CANCEL_POLL_S, at a step), so a cancel stored by mistake would have
    # stopped it. A fifth of a second of margin for the clocks of two processes.
    refused_at = time.time()

    def stepped_since() -> bool:
        progress = retraining.training_progress(redis_conn)
        return progress is not None and progress.updated_at > refused_at + CANCEL_POLL_S + 0.2

    wait_until(stepped_since, "a training step after the refused cancel", 30)
    assert retraining.training_lock(redis_conn) is not None and not any(
        "cancelled" in t for t in progress_texts(fake_slack)
    )

    answer = command(stack, fake_slack, "cancel", "cancel")
    assert job_id in answer and "stops at its next step" in answer
    cancelled = wait_text(fake_slack, "Training cancelled", timeout=30)
    assert f"<@{ADMIN}>" in cancelled and "キャンセルしました" in cancelled
    assert "current model keeps serving" in cancelled
    wait_no_lock(redis_conn, timeout=10)
    progress = retraining.training_progress(redis_conn)
    assert progress is not None and (progress.job_id, progress.phase) == (job_id, "cancelled")
    assert current_version(models) == current and versions(models) == before
    assert train_worker.alive()  # the worker itself goes on serving the queue
    assert "nothing to cancel" in command(stack, fake_slack, "cancel", "cancel-again")


INTERNALS = re.compile(r"(?:^|[\s(`'\"=])/[\w.-]+/|[A-Z][A-Za-z]+(?:Error|Exception)\b|Traceback|OSError")


@pytest.mark.parametrize(
    ("text", "env", "advice"),
    [
        ("base=no-such-model", {}, "check the `base=` name"),
        ("type=linear", {"TRAIN_DATA": "/nonexistent/newsbot/corpus/text"}, "TRAIN_DATA"),
        ("base=tiny-bert", {"TRAIN_DATA": "/nonexistent/newsbot/corpus/text"}, "TRAIN_DATA"),
    ],
    ids=["missing base model", "missing data (linear)", "missing data (bert)"],
)
def test_a_failed_training_tells_the_admin_what_to_do_without_internals(
    stack: dict[str, Any],
    fake_slack: FakeSlack,
    redis_conn: redis.Redis,
    text: str,
    env: dict[str, str],
    advice: str,
) -> None:
    models: Path = stack["models"]
    before, current = versions(models), current_version(models)
    worker = start_worker({**stack["env"], **env}, stack["root"] / "run", "--queues", "train", name="train-fail")
    try:
        assert "Training queued" in command(stack, fake_slack, text, "fail")
        failed = wait_text(fake_slack, "Training failed", timeout=90)
    finally:
        worker.stop()
    lock = retraining.training_progress(redis_conn)
    assert lock is not None and lock.phase == "failed"
    assert advice in failed and "current model keeps serving" in failed and "学習に失敗しました" in failed
    assert f"reference id: `{lock.job_id}`" in failed and "/retrain" in failed
    assert not INTERNALS.search(failed), failed
    for secret in (str(stack["root"]), "/nonexistent", str(Path(stack["env"]["BASE_MODELS_DIR"]))):
        assert secret not in failed
    assert not any("Training lost" in t for t in progress_texts(fake_slack))  # it failed on its own, and said so
    assert lock.job_id in worker.log()  # the details are in the worker's log, under the reference id
    assert retraining.training_lock(redis_conn) is None
    assert current_version(models) == current and versions(models) == before  # nothing registered or promoted
