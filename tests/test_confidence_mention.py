"""Issue 19: ``python -m training predict`` decides ``unsure`` exactly as the bot does, through real mentions: a
signed ``app_mention`` to the running bot, the running worker's reply in its thread, and the CLI on the same texts.

Both run with CONFIDENCE_THRESHOLD=0.9, so that this small synthetic corpus gives sure and unsure answers alike
(its model's own bar, chosen for 95 % precision on 36 validation articles, calls these texts all unsure; the
model's own rule is compared with the bot's in-process in tests/test_confidence.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import pytest
import redis

from testkit.fake_slack import FakeSlack
from testkit.processes import product_env, running_stack
from testkit.redis_server import RedisServer
from testkit.samples import SAMPLES
from testkit.signing import event_body, slack_signature_headers
from training.api import TrainOutcome
from training.cli import main

SECRET = "confidence-secret"
THRESHOLD = "0.9"
NOT_SURE = "自信がありません / Not sure"
CHANNEL = "C9"
TEXTS = [
    *(texts[0] for texts in SAMPLES.values()),
    "チューリップが見頃を迎え、市内の公園には家族連れが訪れた。地元の農家は球根の植え付けを振り返った。",
    "県の教育委員会は来年度の入試日程を発表した。受験生は願書の提出期限に注意が必要だ。",
    "The city council approved the new budget after a long debate about public transport.",
]


def stack_env(redis_server: RedisServer, fake_slack: FakeSlack, models: Path, **more: str) -> dict[str, str]:
    """The bot's and the worker's environment: the model registry ``models`` served with CONFIDENCE_THRESHOLD=0.9,
    requests signed with SECRET, no member rate limit (the test mentions a dozen articles at once)."""
    return product_env(
        REDIS_URL=redis_server.url,
        SLACK_API_URL=fake_slack.api_url,
        MODEL_DIR=str(models),
        SLACK_SIGNING_SECRET=SECRET,
        MEMBER_RATE_PER_MINUTE="0",
        CONFIDENCE_THRESHOLD=THRESHOLD,
        **more,
    )


def mention_all(url: str, texts: list[str]) -> list[str]:
    """Each text as a signed ``app_mention`` in CHANNEL, in order, as Slack delivers them; their ts (each reply's
    thread_ts)."""
    stamps = []
    for n, text in enumerate(texts, 1):
        ts = f"1700000900.{n:06d}"
        event = {"type": "app_mention", "user": "U1", "text": f"<@UBOT> {text}", "ts": ts}
        body = event_body({**event, "channel": CHANNEL, "event_ts": ts}, f"EvConf{n}")
        headers = {"Content-Type": "application/json", **slack_signature_headers(body, SECRET)}
        assert httpx.post(url, content=body, headers=headers, timeout=10).status_code == 200
        stamps.append(ts)
    return stamps


def test_predict_says_unsure_exactly_where_the_bot_says_not_sure(
    tmp_path: Path,
    redis_server: RedisServer,
    fake_slack: FakeSlack,
    redis_conn: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    calibrated_linear: TrainOutcome,
) -> None:
    monkeypatch.setenv("CONFIDENCE_THRESHOLD", THRESHOLD)
    models = calibrated_linear.path.parent
    out = io.StringIO()
    assert main(["predict", "--model-dir", str(models)], stdin=io.StringIO("\n".join(TEXTS) + "\n"), out=out) == 0
    cli = [json.loads(line) for line in out.getvalue().splitlines()]
    assert cli[0]["calibrated"] is True and cli[0]["rule"] == "setting" and cli[0]["threshold"] == 0.9

    redis_server.flush()
    with running_stack(stack_env(redis_server, fake_slack, models), tmp_path / "run") as (url, _):
        stamps = mention_all(url, TEXTS)
        fake_slack.wait_for_calls("chat.postMessage", len(TEXTS), timeout=120)
    replies = {c.params["thread_ts"]: c.params["text"] for c in fake_slack.calls_to("chat.postMessage")}
    bot = [NOT_SURE in replies[ts] for ts in stamps]
    assert bot == [row["unsure"] for row in cli]
    assert True in bot and False in bot, bot  # both decisions were made, so the comparison means something
