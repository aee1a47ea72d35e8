"""``scripts/run`` for a newcomer: settings checked before anything is installed, ``.env`` read as the Python
settings read it, and ``--demo`` running the product against a local fake Slack.

The first tests run the real scripts/run from a copy of the repository layout whose scripts/setup only records
how it was called (and stops the run there): the order "check, then install" is what they observe. The last one
runs the whole demo for real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dotenv import dotenv_values

from testkit.fake_corpus import build_archive

ROOT = Path(__file__).resolve().parents[1]
RECORDER = """#!/usr/bin/env bash
{ echo "ARGS=$*"; env; } > "$(dirname "$0")/../setup-called"
exit 97
"""


def run_script(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "HOME": str(repo)}
    return subprocess.run(
        ["bash", str(repo / "scripts" / "run"), *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def setup_saw(repo: Path) -> dict[str, str] | None:
    marker = repo / "setup-called"
    if not marker.exists():
        return None
    return dict(line.split("=", 1) for line in marker.read_text().splitlines() if "=" in line)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "run", tmp_path / "scripts" / "run")
    (tmp_path / "scripts" / "setup").write_text(RECORDER)
    (tmp_path / "scripts" / "setup").chmod(0o755)
    return tmp_path


def test_without_slack_tokens_it_says_what_to_set_and_how_to_try_it_before_installing(repo: Path) -> None:
    result = run_script(repo)
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    for words in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", ".env", "scripts/run --demo"):
        assert words in line
    assert setup_saw(repo) is None, "scripts/setup ran before the settings were checked"


def test_a_bot_token_alone_is_not_enough(repo: Path) -> None:
    result = run_script(repo, env={"SLACK_BOT_TOKEN": "xoxb-1"})
    assert result.returncode == 2
    assert "SLACK_APP_TOKEN" in result.stderr and "set SLACK_BOT_TOKEN" not in result.stderr
    assert setup_saw(repo) is None


def test_unknown_options_stop_before_installing(repo: Path) -> None:
    result = run_script(repo, "--trian-worker", env={"SLACK_BOT_TOKEN": "x", "SLACK_APP_TOKEN": "y"})
    assert result.returncode == 2 and "unknown option --trian-worker" in result.stderr
    assert setup_saw(repo) is None


def test_dotenv_is_read_like_the_python_settings_and_never_overrides_the_environment(repo: Path) -> None:
    (repo / ".env").write_text(
        "# Slack\n"
        "SLACK_BOT_TOKEN=xoxb-from-file\n"
        "SLACK_APP_TOKEN=xapp-from-file\n"
        'export ADMIN_USER_IDS="U1,U2"  # admins\n'
        "LOG_LEVEL=DEBUG # inline comment\n"
        "FETCH_ALLOWED_NETWORKS='10.0.0.0/8 # not a comment'\n"
        "SLACK_SIGNING_SECRET=\n"
        "TRAIN_DATA = /srv/ldcc.tar.gz\r\n"
    )
    result = run_script(repo, env={"SLACK_APP_TOKEN": "xapp-from-env"})
    assert result.returncode == 97, result.stderr  # the recorder stopped it: the check passed
    seen = setup_saw(repo)
    assert seen is not None and seen["ARGS"] == "train"
    assert seen["SLACK_APP_TOKEN"] == "xapp-from-env"
    expected = dotenv_values(repo / ".env")  # what pydantic-settings reads from the same file
    for name in ("SLACK_BOT_TOKEN", "ADMIN_USER_IDS", "LOG_LEVEL", "FETCH_ALLOWED_NETWORKS", "SLACK_SIGNING_SECRET"):
        assert seen[name] == expected[name], name
    assert seen["TRAIN_DATA"] == "/srv/ldcc.tar.gz"


def test_demo_needs_no_slack_settings(repo: Path) -> None:
    result = run_script(repo, "--demo", "--data", "x.tar.gz")
    assert result.returncode == 97, result.stderr
    assert setup_saw(repo) is not None


def test_the_demo_defaults_to_the_official_corpus_url_not_a_local_path() -> None:
    from common.settings import Settings

    env = {k: v for k, v in os.environ.items() if k != "TRAIN_DATA"}
    help_text = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--help"], env=env, capture_output=True, text=True
    ).stdout
    default = Settings.model_fields["train_data"].default
    assert default.startswith("https://") and default in "".join(help_text.split())
    assert "shared/data" not in (ROOT / "scripts" / "demo.py").read_text()


NO_INSTALL = """#!/usr/bin/env bash
[ -x "$(dirname "$0")/../.venv/bin/python" ]   # the test's copy shares this checkout's .venv, installs nothing
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_run_demo_bootstraps_a_model_and_prints_the_reply(tmp_path: Path) -> None:
    """The whole demo from a copy of the checkout (its scripts/setup replaced, so that nothing is installed into a
    shared .venv): scripts/run --demo, fake Slack, a local redis-server, bootstrap, worker, bot, the reply."""
    repo = tmp_path / "repo"
    for name in ("common", "store", "telemetry", "newsmodel", "ui", "bot", "worker", "training", "testkit", "scripts"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "scripts" / "setup").write_text(NO_INSTALL)
    (repo / ".venv").symlink_to((ROOT / ".venv").resolve())
    archive = build_archive(tmp_path / "corpus" / "ldcc-20140209.tar.gz", per_class=12)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "REDIS_", "MODEL_", "TRAIN_", "DATA_"))}
    result = subprocess.run(
        ["bash", str(repo / "scripts" / "run"), "--demo", "--data", str(archive)],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "demo: chat.postMessage in channel CDEMO" in result.stdout
    assert "カテゴリ / Category" in result.stdout
    versions = [p.name for p in (repo / "models").iterdir() if p.is_dir()]
    assert len(versions) == 1, "the bootstrap trained one linear model into the default MODEL_DIR"
    assert (repo / "models" / "current").read_text().strip() == versions[0]
