"""Waiting on a condition, never for a fixed time: the one polling loop the tests and testkit share."""

from __future__ import annotations

import time
from collections.abc import Callable

# How often a condition is looked at: short against the waits it serves (a reply, a process state, a key).
POLL_S = 0.05


def wait_until(
    condition: Callable[[], object],
    what: str,
    timeout: float = 30.0,
    *,
    details: Callable[[], str] | None = None,
) -> None:
    """Return as soon as ``condition()`` is true; AssertionError naming ``what`` (and ``details()``, e.g. the
    processes' logs) once ``timeout`` seconds have passed without it."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if time.monotonic() >= deadline:
            extra = f"\n{details()}" if details is not None else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{extra}")
        time.sleep(POLL_S)
