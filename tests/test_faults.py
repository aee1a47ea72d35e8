"""Faults survived: a worker SIGKILLed or SIGTERMed mid-job, Slack answering 429/500/timeouts, a broken model.

Each test starts the real processes (bot in HTTP mode, worker) against a private redis-server and the local
fake Slack Web API, and breaks them from outside. Job timeouts and leases are the product's defaults.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import redis
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from common.jobs import job_id_for
from store.queues import SERIALIZER, classify_queue
from store.serving import serving_states
from testkit.fake_slack import FakeSlack, Fault
from testkit.processes import Proc, product_env, start_bot, start_worker, start_workers
from testkit.redis_server import RedisServer, free_port
from testkit.samples import SAMPLES
from testkit.signing import event_body, slack_signature_headers
from testkit.slack_requests import slash_command
from testkit.waiting import wait_until

SECRET = "test-signing-secret"
ARTICLE_HTML = (
    "<html><head><meta charset='utf-8'><title>開幕戦でエースが完投</title></head><body><article>"
    "<h1>開幕戦でエースが完投</h1>"
    + "".join(f"<p>{t}</p>" for t in SAMPLES["sports-watch"] * 4)
    + "</article></body></html>"
).encode()


class SlowPages:
    """A local article server whose first request hangs until released (to catch a worker mid-job)."""

    def __init__(self, hang_first: float) -> None:
        self.hang_first = hang_first
        self.requests = 0
        self.first_arrived = threading.Event()
        self.release = threading.Event()
        pages = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                pages.requests += 1
                if pages.requests == 1:
                    pages.first_arrived.set()
                    pages.release.wait(pages.hang_first)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(ARTICLE_HTML)))
                    self.end_headers()
                    self.wfile.write(ARTICLE_HTML)
                except OSError:
                    pass  # the worker that asked was killed

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/news/1"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def pages() -> Iterator[SlowPages]:
    server = SlowPages(hang_first=8.0)
    yield server
    server.stop()


def settings_env(redis_server: RedisServer, fake_slack: FakeSlack) -> dict[str, str]:
    return product_env(
        REDIS_URL=redis_server.url,
        SLACK_API_URL=fake_slack.api_url,
        SLACK_SIGNING_SECRET=SECRET,
        FETCH_ALLOWED_NETWORKS="127.0.0.0/8",
        SLACK_TIMEOUT_S="2",
        ADMIN_USER_IDS="UADMIN",
    )


@pytest.fixture
def env(
    redis_server: RedisServer, redis_conn: redis.Redis, fake_slack: FakeSlack, model_registry: Path
) -> dict[str, str]:
    """The workers' environment: each test has its own model registry."""
    return {**settings_env(redis_server, fake_slack), "MODEL_DIR": str(model_registry)}


@pytest.fixture(scope="module")
def bot_url(
    redis_server: RedisServer, fake_slack_server: FakeSlack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One bot for the module: it keeps nothing between requests that a test's flushed Redis would not reset."""
    port = free_port()
    proc = start_bot(settings_env(redis_server, fake_slack_server), port, tmp_path_factory.mktemp("bot"))
    yield f"http://127.0.0.1:{port}/slack/events"
    proc.stop()


def mention(url: str, event_id: str, ts: str, text: str) -> str:
    event = {"type": "app_mention", "user": "U1", "text": f"<@UBOT> {text}", "ts": ts, "channel": "CF", "event_ts": ts}
    body = event_body(event, event_id)
    response = httpx.post(
        url, content=body, headers={"Content-Type": "application/json", **slack_signature_headers(body, SECRET)}
    )
    assert response.status_code == 200
    return job_id_for("classify", f"event:{event_id}")


def delivered_in(fake: FakeSlack, thread_ts: str) -> list[str]:
    return [
        c.params.get("text", "")
        for c in fake.calls_to("chat.postMessage")
        if c.delivered and c.params.get("thread_ts") == thread_ts
    ]


def job_status(conn: redis.Redis, job_id: str) -> JobStatus | None:
    return Job.fetch(job_id, connection=conn, serializer=SERIALIZER).get_status()


def wait_settled(conn: redis.Redis, job_id: str, timeout: float = 30) -> None:
    """Until the job has finished and nothing is left that could post again: no classify job waiting or in hand
    (a job handed back twice, or a second worker on it, would show as one of those, then as a second reply)."""
    queue = classify_queue(conn)

    def settled() -> bool:
        return (
            job_status(conn, job_id) == JobStatus.FINISHED
            and queue.count == 0
            and StartedJobRegistry(queue=queue).count == 0
        )

    wait_until(settled, f"job {job_id} finished with nothing left in the queue", timeout)


def kill_with_children(proc: Proc) -> None:
    """SIGKILL the worker and its children (RQ's scheduler) at once, as a killed container or node does."""
    pid = proc.popen.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for each in [pid, *map(int, children)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(each, signal.SIGKILL)
    proc.wait_exit(10)
    proc.stop()


def test_a_job_in_hand_when_its_worker_is_killed_is_answered_once_by_another_within_30_s(
    env: dict[str, str], bot_url: str, tmp_path: Path, pages: SlowPages, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    workers = {proc.name: proc for proc in start_workers(env, tmp_path, "w1", "w2")}
    try:
        job_id = mention(bot_url, "EvKill", "30.1", f"<{pages.url}>")
        assert pages.first_arrived.wait(60), [w.log() for w in workers.values()]
        job = Job.fetch(job_id, connection=redis_conn, serializer=SERIALIZER)
        assert job.get_status() == JobStatus.STARTED
        doomed = next(w for n, w in workers.items() if (job.worker_name or "").startswith(f"{n}-"))
        kill_with_children(doomed)
        killed_at = time.monotonic()

        # Nothing renews the dead worker's lease (JOB_LEASE_S); the other worker's maintenance hands the job back.
        fake_slack.wait_for(lambda f: len(delivered_in(f, "30.1")) >= 1, timeout=90)
        recovery_s = time.monotonic() - killed_at
        print(f"recovered {recovery_s:.1f} s after the kill")
        assert recovery_s <= 30, recovery_s
        wait_settled(redis_conn, job_id)
        replies = delivered_in(fake_slack, "30.1")
        assert len(replies) == 1, replies
        assert "`sports-watch`" in replies[0] or "%" in replies[0]
        assert pages.requests == 2  # fetched again by the survivor
    finally:
        for worker in workers.values():
            worker.stop()


def test_a_live_worker_keeps_a_batch_that_outlasts_its_lease_and_nobody_else_takes_it(
    env: dict[str, str], bot_url: str, tmp_path: Path, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    # Slack rate-limits the reply for 25 s: far longer than the lease (10 s) plus the other's maintenance (5 s).
    fake_slack.fail("chat.postMessage", Fault(429, {"Retry-After": "25"}))
    workers = start_workers(env, tmp_path, "w1", "w2")
    try:
        job_id = mention(bot_url, "EvSlow", "34.1", SAMPLES["smax"][0])
        limited = fake_slack.wait_for_calls("chat.postMessage", 1, timeout=60)[0]
        assert limited.status == 429
        # Until the first worker's own post after its Retry-After wait. Had another worker taken the job over
        # (within lease + maintenance, ~20 s at worst, before 25 s), its reply would be posted before this one.
        fake_slack.wait_for(
            lambda f: any(c.at >= limited.at + 25 for c in f.calls_to("chat.postMessage") if c.status == 200),
            timeout=60,
        )
        wait_settled(redis_conn, job_id)
        attempts = [c.status for c in fake_slack.calls_to("chat.postMessage") if c.params.get("thread_ts") == "34.1"]
        assert attempts == [429, 200], attempts  # one worker, one wait, one reply: nobody took the job over
        job = Job.fetch(job_id, connection=redis_conn, serializer=SERIALIZER)
        assert job.retries_left == 3  # never handed back as abandoned
        assert all(w.alive() for w in workers)
    finally:
        for worker in workers:
            worker.stop()


def test_sigterm_lets_the_worker_finish_the_job_in_hand_then_exit(
    env: dict[str, str], bot_url: str, tmp_path: Path, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    pages = SlowPages(hang_first=3.0)
    try:
        worker = start_worker(env, tmp_path / "w", name="warm")
        job_id = mention(bot_url, "EvTerm", "31.1", f"<{pages.url}>")
        assert pages.first_arrived.wait(60), worker.log()
        worker.signal(signal.SIGTERM)  # mid-job: the page is still hanging
        assert worker.wait_exit(60) == 0, worker.log()
        worker.stop()
        assert len(delivered_in(fake_slack, "31.1")) == 1
        assert job_status(redis_conn, job_id) == JobStatus.FINISHED
    finally:
        pages.stop()


def test_slack_429_then_500s_then_timeouts_delay_the_reply_but_it_arrives_once(
    env: dict[str, str], bot_url: str, tmp_path: Path, fake_slack: FakeSlack, redis_conn: redis.Redis
) -> None:
    fake_slack.fail(
        "chat.postMessage",
        Fault(429, {"Retry-After": "1"}),
        Fault(500),
        Fault(503),
        Fault(500),
        Fault(500, delay_s=3.0),  # longer than SLACK_TIMEOUT_S=2: the client times out
    )
    worker = start_worker(env, tmp_path / "w")
    try:
        job_id = mention(bot_url, "EvSlack", "32.1", SAMPLES["smax"][0])
        fake_slack.wait_for(lambda f: len(delivered_in(f, "32.1")) >= 1, timeout=120)
        wait_settled(redis_conn, job_id)
        attempts = [c for c in fake_slack.calls_to("chat.postMessage") if c.params.get("thread_ts") == "32.1"]
        assert [c.status for c in attempts] == [429, 500, 503, 500, 500, 200]
        assert attempts[1].at - attempts[0].at >= 1.0  # Retry-After honoured
        assert len(delivered_in(fake_slack, "32.1")) == 1
    finally:
        worker.stop()


def test_a_corrupt_model_becoming_current_keeps_the_previous_one_serving_and_status_says_why(
    env: dict[str, str],
    bot_url: str,
    tmp_path: Path,
    fake_slack: FakeSlack,
    model_registry: Path,
    redis_conn: redis.Redis,
) -> None:
    worker = start_worker({**env, "MODEL_POLL_INTERVAL_S": "0.5"}, tmp_path / "w")
    try:
        broken = model_registry / "20260202-000000-broken01"
        broken.mkdir()
        (broken / "config.json").write_text('{"model_type": "bert", "id2lab', encoding="utf-8")  # half-written
        (model_registry / "current").write_text(broken.name + "\n")

        # Once the worker has tried the broken version and published why it failed, /retrain status shows it.
        wait_until(lambda: any(broken.name in s.last_error for s in serving_states(redis_conn)), "the load error", 60)
        slash_command(bot_url, "/retrain", "status", user="UADMIN", response_url=fake_slack.response_url("st"))
        text = str(fake_slack.wait_response("st")["text"])
        assert broken.name in text, text  # the problem is shown: the version that failed to load, and why
        assert "20260101-000000-tiny0001" in text  # and what is still served

        mention(bot_url, "EvAfterBroken", "33.1", SAMPLES["peachy"][0])
        fake_slack.wait_for(lambda f: len(delivered_in(f, "33.1")) == 1, timeout=60)
        assert worker.alive()
        assert "20260101-000000-tiny0001" in str(fake_slack.calls_to("chat.postMessage")[-1].params)
    finally:
        worker.stop()
