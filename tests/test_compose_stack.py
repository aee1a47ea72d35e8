"""The compose check (testkit/compose_check.py, scripts/compose-check) as a test: the images built and the whole
stack driven on a real Docker engine. Marked ``compose``: neither lane of scripts/check runs it (it takes minutes,
longer on a first build); `scripts/check --compose` does, and it skips where no engine answers (on this project's
CI machines: scripts/compose-setup first, docs/deploy.md "The compose check")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from testkit import compose_check

pytestmark = [pytest.mark.compose, pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(3600)]


def test_the_compose_stack_builds_answers_retrains_and_survives_down_and_up(capsys: pytest.CaptureFixture[str]) -> None:
    reason = compose_check.engine_unavailable()
    if reason is not None:
        pytest.skip(f"compose check: {reason}")
    work = Path(os.environ.get("COMPOSE_CHECK_HOME", "/var/tmp/compose-check"))
    try:
        stack = compose_check.run_check(work, override=True, keep=False)
    except compose_check.CheckFailed as failure:
        pytest.fail(f"{failure}\n{capsys.readouterr().out[-6000:]}")
    assert [name for name, _ in stack.figures][-1].startswith("up again")
