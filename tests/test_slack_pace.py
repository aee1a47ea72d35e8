"""One Slack pace for all workers (store.slack.SlackPace): calls per method and channel are spaced across processes.

The in-process tests run two limiters on one Redis, as two workers would; the end-to-end test runs two real
``python -m worker`` processes on a burst in one watched channel and counts, at the fake Slack, the calls per
second per method and channel.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq.job import Job

from bot.submit import JobSubmitter
from common.jobs import ClassifyRequest
from store.queues import SERIALIZER
from store.slack import PACE_SLOT, SlackPace
from testkit.fake_slack import Call, FakeSlack
from testkit.processes import classify_settled, product_env, seed_registry, start_workers
from testkit.redis_server import RedisServer
from testkit.samples import SAMPLES
from testkit.waiting import wait_until

# --- the limiter, in process ----------------------------------------------------------------------------------------


def calls_through(pace: SlackPace, channel: str, count: int, spans: list[tuple[float, float]]) -> None:
    """``count`` calls of 20 ms each through ``pace`` in ``channel``, their (start, end) appended to ``spans``."""
    for _ in range(count):
        with pace.slot("chat.postMessage", channel):
            start = time.monotonic()
            time.sleep(0.02)
            spans.append((start, time.monotonic()))


def test_two_limiters_on_one_redis_space_calls_in_a_channel_from_the_end_of_one_to_the_start_of_the_next(
    redis_conn: redis.Redis,
) -> None:
    interval = 0.2
    first, second = SlackPace(redis_conn, interval), SlackPace(redis_conn, interval)  # two workers' limiters
    spans: list[tuple[float, float]] = []
    threads = [threading.Thread(target=calls_through, args=(pace, "C1", 4, spans)) for pace in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    spans.sort()
    assert len(spans) == 8
    gaps = [later[0] - earlier[1] for earlier, later in itertools.pairwise(spans)]
    # Redis expires the cooldown to the millisecond; 5 ms of margin for the threads' own clocks and wake-ups.
    assert min(gaps) >= interval - 0.005, gaps
    assert spans[-1][0] - spans[0][0] < 8 * (interval + 0.02) + 1.0  # and no call waits much past its turn


def test_another_channel_or_method_has_its_own_pace_and_zero_turns_it_off(redis_conn: redis.Redis) -> None:
    pace = SlackPace(redis_conn, 5.0)
    with pace.slot("chat.postMessage", "C1") as waited:
        assert waited == 0.0
    started = time.monotonic()
    with pace.slot("chat.postMessage", "C2"), pace.slot("reactions.add", "C1"):
        pass
    assert time.monotonic() - started < 1.0  # C1's cooldown holds back neither
    assert 4000 < int(redis_conn.pttl(SlackPace.key_for("chat.postMessage", "C1"))) <= 5000
    assert SlackPace.key_for("chat.postMessage", "C1") == PACE_SLOT.key_for("chat.postMessage:C1")
    with SlackPace(redis_conn, 0.0).slot("chat.postMessage", "C1") as waited:  # SLACK_PACE_S=0: no pace
        assert waited == 0.0


def test_a_slot_whose_holder_died_lapses_after_its_hold(redis_conn: redis.Redis) -> None:
    dead = SlackPace(redis_conn, 0.1, hold_s=0.3)
    dead.acquire("chat.postMessage", "C1")  # taken and never handed back: its worker was killed mid-call
    started = time.monotonic()
    with SlackPace(redis_conn, 0.1).slot("chat.postMessage", "C1"):
        waited = time.monotonic() - started
    assert 0.2 <= waited < 2.0


# --- two real workers, one burst in one channel ---------------------------------------------------------------------

NEWS = "CNEWS"
ARTICLE = "".join(SAMPLES["sports-watch"]) * 3
PACE_S = 1.0  # the default: Slack's "about one message per second per channel"


@pytest.fixture
def two_workers(
    redis_server: RedisServer, redis_conn: redis.Redis, fake_slack: FakeSlack, tiny_model: Path, tmp_path: Path
) -> Iterator[None]:
    models = tmp_path / "models"
    seed_registry(models, tiny_model, "20260101-000000-tiny0001")
    env = product_env(
        REDIS_URL=redis_server.url,
        SLACK_API_URL=fake_slack.api_url,
        MODEL_DIR=str(models),
        SLACK_PACE_S=str(PACE_S),
        CONFIDENCE_THRESHOLD="0",
        WATCH_REPLY="both",  # a reaction and a thread reply per message: two methods paced in one channel
        CLASSIFY_BATCH_SIZE="1",  # one job at a time, so that both workers take jobs of the burst
    )
    fake_slack.add_channel(NEWS)
    workers = start_workers(env, tmp_path, "w1", "w2")
    try:
        yield
    finally:
        for worker in workers:
            worker.stop()


def per_second(calls: list[Call]) -> Counter[int]:
    return Counter(int(call.at) for call in calls)


def test_a_burst_through_two_workers_keeps_one_call_per_second_per_channel_and_method(
    two_workers: None, redis_conn: redis.Redis, fake_slack: FakeSlack
) -> None:
    submitter = JobSubmitter(redis_conn)
    messages = 6
    job_ids = []
    for n in range(messages):
        ts = f"1700000000.{n:06d}"
        request = ClassifyRequest(
            request_id=f"EvPace{n}", text=ARTICLE, channel=NEWS, user="U1", thread_ts=ts, source="watch"
        )
        job_ids.append(submitter.submit_classify(request, f"EvPace{n}"))
    fake_slack.wait_for(
        lambda f: len(f.calls_to("reactions.add")) >= messages and len(f.calls_to("chat.postMessage")) >= messages,
        timeout=90,
    )
    wait_until(lambda: classify_settled(redis_conn), "the burst to be settled", 30)

    workers = {Job.fetch(str(i), connection=redis_conn, serializer=SERIALIZER).worker_name for i in job_ids}
    assert len({(name or "").split("-")[0] for name in workers}) == 2, workers  # both workers took jobs
    for method in ("reactions.add", "chat.postMessage"):
        calls = sorted(fake_slack.calls_to(method), key=lambda c: c.at)
        assert len(calls) == messages and all(c.delivered and c.params["channel"] == NEWS for c in calls)
        gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
        print(f"{method}: gaps {min(gaps):.3f}–{max(gaps):.3f} s, busiest second {max(per_second(calls).values())}")
        # SLACK_PACE_S=1: at most one call in any second, as Slack sees them (measured at the fake's arrival).
        assert max(per_second(calls).values()) == 1, per_second(calls)
        assert min(gaps) >= PACE_S - 0.01, gaps  # the margin: 10 ms for the server's clock and timer rounding
