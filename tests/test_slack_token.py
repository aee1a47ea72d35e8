"""A revoked or uninstalled token: jobs wait in the queue (no retry against it), one log line, the state in Redis
for readiness and ``newsbot_slack_token_valid``, and a working auth.test (or a new token) resumes the workers.

The worker runs in this process (testkit.inprocess_worker: the real BatchingWorker, Runtime and Slack client
against the fake Slack over HTTP); the bot's event handlers are called directly.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import redis
from rq import Retry
from rq.job import Job, JobStatus
from slack_bolt import BoltContext

from bot.listeners.tokens import handle_app_uninstalled, handle_tokens_revoked
from bot.submit import JobSubmitter
from store.queues import SERIALIZER, classify_queue
from store.slack import fingerprint, mark_revoked, token_revoked, token_state
from telemetry import metrics
from testkit.fake_slack import FakeSlack, Fault
from testkit.inprocess_worker import enqueue_classify, install_runtime, run_burst, worker_settings
from testkit.redis_server import RedisServer
from testkit.samples import SAMPLES
from worker.batching import BatchingWorker
from worker.jobs import Runtime

TOKEN = "xoxb-test-token"  # worker_settings' token
TEXT = SAMPLES["sports-watch"][0]


@pytest.fixture
def rt(redis_server: RedisServer, redis_conn: redis.Redis, fake_slack: FakeSlack, model_registry: Path) -> Runtime:
    return install_runtime(worker_settings(redis_server.url, fake_slack.api_url, model_registry), redis_conn)


def token_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "token" in r.getMessage()]


def token_gauge(connection: redis.Redis, token: str = TOKEN) -> str:
    metrics.watch_slack_token(lambda: token_revoked(connection, token))
    body = metrics.exposition()[0].decode()
    return next(line for line in body.splitlines() if line.startswith("newsbot_slack_token_valid "))


@pytest.mark.parametrize("error", ["token_revoked", "invalid_auth", "account_inactive"])
def test_a_dead_token_holds_the_job_in_the_queue_untouched_and_says_so_once(
    rt: Runtime, redis_conn: redis.Redis, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture, error: str
) -> None:
    caplog.set_level(logging.INFO)
    fake_slack.token_error = error
    queue = classify_queue(redis_conn)
    job = enqueue_classify(queue, TEXT, 1, retry=Retry(max=3, interval=[5, 15, 60]))
    run_burst(redis_conn)  # takes the job, meets the dead token, then stops (a burst worker does not wait)

    assert len(fake_slack.calls_to("chat.postMessage")) == 1  # one try, no retry against a dead token
    held = Job.fetch(job.id, connection=redis_conn, serializer=SERIALIZER)
    assert held.get_status() == JobStatus.QUEUED and queue.job_ids == [job.id]
    assert held.retries_left == 3  # none used up: the failure was the token's, not the job's
    assert queue.failed_job_registry.count == 0 and queue.scheduled_job_registry.count == 0
    state = token_state(redis_conn)
    assert state is not None and state.reason == error and state.token == fingerprint(TOKEN)
    assert token_revoked(redis_conn, TOKEN) == error and token_revoked(redis_conn) == error
    assert token_gauge(redis_conn) == "newsbot_slack_token_valid 0.0"
    (line,) = token_lines(caplog)  # one clear line, no traceback
    assert error in line and "SLACK_BOT_TOKEN" in line and "queue" in line
    assert not any(r.exc_info for r in caplog.records)

    # The token works again (or a new one was set): the next worker's auth.test clears the record, the job is
    # answered once.
    fake_slack.token_error = None
    run_burst(redis_conn)
    assert token_state(redis_conn) is None and token_revoked(redis_conn, TOKEN) is None
    assert token_gauge(redis_conn) == "newsbot_slack_token_valid 1.0"
    posts = [c for c in fake_slack.calls_to("chat.postMessage") if c.delivered]
    assert len(posts) == 1 and posts[0].params["thread_ts"] == "1700000000.000001"
    assert Job.fetch(job.id, connection=redis_conn, serializer=SERIALIZER).get_status() == JobStatus.FINISHED


def test_a_worker_takes_no_job_while_the_token_is_recorded_revoked(
    rt: Runtime, redis_conn: redis.Redis, fake_slack: FakeSlack
) -> None:
    """Another process (here the bot, on ``app_uninstalled``) recorded it: this worker checks auth.test, which
    still refuses, and takes nothing."""
    handle_app_uninstalled(submitter=JobSubmitter(redis_conn), settings=rt.settings)
    fake_slack.token_error = "account_inactive"
    queue = classify_queue(redis_conn)
    job = enqueue_classify(queue, TEXT, 2)
    run_burst(redis_conn)
    assert [c.method for c in fake_slack.calls] == ["auth.test"]
    assert queue.job_ids == [job.id]
    assert token_revoked(redis_conn, TOKEN) == "account_inactive"  # auth.test's own answer, recorded


def test_a_waiting_worker_asks_auth_test_until_the_token_works_then_serves(
    rt: Runtime, redis_conn: redis.Redis, fake_slack: FakeSlack
) -> None:
    mark_revoked(redis_conn, TOKEN, "token_revoked", "w0")
    fake_slack.fail("auth.test", Fault(error="token_revoked"), Fault(error="token_revoked"))
    worker = BatchingWorker([classify_queue(redis_conn)], connection=redis_conn, serializer=SERIALIZER)
    worker.token_check_interval_s, worker.token_wait_step_s = 0.05, 0.01
    worker.wait_for_token(burst=False)  # returns only once auth.test accepts the token
    assert [c.error for c in fake_slack.calls_to("auth.test")] == ["token_revoked", "token_revoked", None]
    assert token_state(redis_conn) is None


def test_a_record_about_a_replaced_token_does_not_count_for_the_new_one(redis_conn: redis.Redis) -> None:
    mark_revoked(redis_conn, "xoxb-old", "token_revoked", "w1")
    assert token_revoked(redis_conn, "xoxb-new") is None  # readiness of a process with the new token
    assert token_revoked(redis_conn, "xoxb-old") == "token_revoked"
    assert token_gauge(redis_conn, "xoxb-new") == "newsbot_slack_token_valid 1.0"
    assert "xoxb-old" not in str(redis_conn.get("newsbot:slack:token"))  # a fingerprint, never the token
    unreachable = redis.Redis(port=1, socket_connect_timeout=0.2)
    assert token_revoked(unreachable, "xoxb-old") is None  # readiness reports Redis itself


def test_the_bot_records_app_uninstalled_and_its_own_bot_tokens_revoked(
    redis_conn: redis.Redis, rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    submitter, settings = JobSubmitter(redis_conn), rt.settings
    context = BoltContext(bot_user_id="UBOT")
    user_only = {"type": "tokens_revoked", "tokens": {"oauth": ["U1"], "bot": []}}
    handle_tokens_revoked(event=user_only, context=context, submitter=submitter, settings=settings)
    other_bot = {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["UOTHER"]}}
    handle_tokens_revoked(event=other_bot, context=context, submitter=submitter, settings=settings)
    assert token_state(redis_conn) is None
    mine = {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["UBOT"]}}
    handle_tokens_revoked(event=mine, context=context, submitter=submitter, settings=settings)
    handle_tokens_revoked(event=mine, context=context, submitter=submitter, settings=settings)  # redelivered
    assert token_revoked(redis_conn, TOKEN) == "tokens_revoked"
    state = token_state(redis_conn)
    assert state is not None and state.source == "event:tokens_revoked"
    assert len(token_lines(caplog)) == 1
    redis_conn.flushall()
    handle_app_uninstalled(submitter=submitter, settings=settings)
    assert token_revoked(redis_conn, TOKEN) == "app_uninstalled"


def test_readiness_turns_false_once_any_process_recorded_the_token_revoked(redis_conn: redis.Redis) -> None:
    """Readiness (``slack_token``) asks auth.test every few minutes, and also reads the record: a token one worker
    found dead makes every process unready at once; cleared, ready again."""
    from bot.slack_client import token_alive
    from store.slack import clear_revoked

    alive = token_alive(lambda: True, redis_conn, "xoxb-live")
    assert alive()
    mark_revoked(redis_conn, "xoxb-live", "token_revoked", "worker w1")
    assert not alive()
    assert token_alive(lambda: True, redis_conn, "xoxb-new")()  # a record about another token does not count
    clear_revoked(redis_conn)
    assert alive()
    assert not token_alive(lambda: False, redis_conn, "xoxb-live")()  # auth.test said dead
