"""Try the product without a Slack workspace: ``scripts/run`` against a local fake Slack Web API.

    scripts/run --demo [--data PATH|URL] [--model-dir DIR] ["記事の本文…"]
    (or, once .venv exists: .venv/bin/python scripts/demo.py [same options])

It starts the fake Slack Web API (testkit/fake_slack.py) on loopback, runs ``scripts/run`` in HTTP mode with
SLACK_API_URL pointing at it (a local redis-server is started by scripts/run; a first linear model is trained
from --data, by default TRAIN_DATA or else its default, the official archive URL, when MODEL_DIR has none), sends
the bot an ``app_mention`` signed exactly as Slack signs it, and prints the reply the worker posts in the thread.
Only the Slack Web API is fake: the bot, Redis, the worker and the model are the real ones.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from common.settings import Settings  # noqa: E402
from testkit.fake_slack import FakeSlack  # noqa: E402
from testkit.redis_server import free_port  # noqa: E402
from testkit.signing import event_body, mention_event, signed_json_headers  # noqa: E402

SECRET = "demo-signing-secret"
DEFAULT_TEXT = (
    "日本代表、終了間際の決勝ゴールでW杯予選を突破\n"
    "サッカー日本代表は10日、ワールドカップ予選の最終戦に臨み、後半アディショナルタイムに途中出場のFWが"
    "決勝ゴールを決めて2対1で勝利した。監督は試合後「選手たちが最後まで走り切ってくれた」とたたえた。"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("text", nargs="?", default=DEFAULT_TEXT, help="the article to mention the bot with")
    # The product's own default: TRAIN_DATA when set (scripts/run --demo has read .env), else the official URL.
    default_data = os.environ.get("TRAIN_DATA") or Settings.model_fields["train_data"].default
    parser.add_argument(
        "--data", default=default_data, help=f"TRAIN_DATA: archive path or URL (default {default_data})"
    )
    parser.add_argument("--model-dir", default=str(ROOT / "models"), help="MODEL_DIR (default ./models)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for set-up and the reply")
    args = parser.parse_args()

    fake = FakeSlack().start()
    port, redis_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env.update(
        SLACK_BOT_TOKEN="xoxb-demo",
        SLACK_APP_TOKEN="",  # set but empty, so that a token in .env does not switch scripts/run to Socket Mode
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=fake.api_url,
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        MODEL_DIR=args.model_dir,
        TRAIN_DATA=args.data,
        PORT=str(port),
        HF_HUB_OFFLINE="1",
        OPS_PORT="0",  # no /healthz, /metrics ports: a demo must not collide with a product running here
    )
    print(f"demo: fake Slack Web API at {fake.api_url}; starting scripts/run (bot on port {port})", flush=True)
    run = subprocess.Popen(["bash", str(ROOT / "scripts/run")], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            if run.poll() is not None:
                print(f"demo: scripts/run exited with {run.returncode}", file=sys.stderr)
                return 1
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        ts = f"{int(time.time())}.000100"
        body = event_body(mention_event(ts, args.text, channel="CDEMO", user="UDEMO"), event_id=f"EvDemo{ts}")
        headers = signed_json_headers(body, SECRET)
        ack = httpx.post(f"http://127.0.0.1:{port}/slack/events", content=body, headers=headers, timeout=10)
        print(f"demo: mention sent, bot answered HTTP {ack.status_code}; waiting for the reply in thread {ts}")
        fake.wait_for(
            lambda f: any(c.params.get("thread_ts") == ts for c in f.calls_to("chat.postMessage")),
            timeout=max(30.0, deadline - time.monotonic()),
        )
        reply = next(c for c in fake.calls_to("chat.postMessage") if c.params.get("thread_ts") == ts)
        print("demo: chat.postMessage in channel", reply.params["channel"], "thread", reply.params["thread_ts"])
        print(reply.params["text"])
        print(
            f"demo: {len(reply.params.get('blocks') or [])} Block Kit blocks;",
            json.dumps([b.get("type") for b in reply.params.get("blocks") or []]),
        )
        return 0
    finally:
        run.send_signal(signal.SIGTERM)  # scripts/run stops bot and worker warmly, then its redis-server
        try:
            run.wait(60)
        except subprocess.TimeoutExpired:
            run.kill()
        fake.stop()


if __name__ == "__main__":
    sys.exit(main())
