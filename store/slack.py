"""What every process shares about Slack itself: the pace of calls per channel, and whether the token is dead.

**One pace for all workers** (:class:`SlackPace`). Slack limits calls per method and channel (chat.postMessage:
about one message per second per channel), whatever process makes them, so the pace is kept in Redis, one key
per method and channel (``newsbot:slack:pace:<method>:<channel>``), and every worker waits its turn there:

1. A call takes the slot with ``SET key <holder> NX PX PACE_HOLD_S`` (atomic: one holder at a time).
2. It makes its Slack call (slack_sdk waits out a 429 inside it: the slot is still held).
3. It hands the slot back with a Lua script that turns the key into a cooldown lasting SLACK_PACE_S
   (``SET key cooldown PX interval``, only if it still holds it), so the next call in that channel starts at least
   SLACK_PACE_S after this one *ended*, from whichever worker.

A waiter asks one Lua script (:data:`_TAKE`) that takes the slot or says how long to wait: the cooldown's PTTL
when the channel is cooling down, or a short poll (PACE_POLL_S) while another call is in flight. Why this and
not a reservation clock or INCR windows: a fixed INCR window lets two calls through a few milliseconds apart at a
window's edge, and a reservation clock (``next = max(now, next) + interval``) spaces the *starts* of calls but
lets the next one start while a slow or 429-retried call is still in flight; the held slot plus cooldown spaces
what Slack sees (one call's end to the next one's start), so the guarantee holds as measured at Slack, with no
clock shared between hosts (only Redis's TTLs). The cost: a slot freed is taken by whichever waiter asks first
(no queue order), and a worker killed mid-call blocks its channel for at most PACE_HOLD_S.

**A dead token** (:class:`TokenState`, ``newsbot:slack:token``). When Slack answers ``invalid_auth``,
``token_revoked`` or ``account_inactive``, or sends ``app_uninstalled`` / ``tokens_revoked``, the process that saw
it records the token as revoked (the reason, when, who saw it, and a fingerprint of the token: the first 12 hex
digits of its SHA-256, never the token). Workers whose token it is stop taking jobs until auth.test accepts the
token again; readiness asks :func:`token_revoked`. The record has no TTL: it goes when a worker's auth.test
succeeds (the token works again, or a new token replaced it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from redis import Redis
from redis.exceptions import RedisError

from store.record import Key, as_str

log = logging.getLogger(__name__)

# --- one pace for all workers -------------------------------------------------------------------------------------

# The longest one call may hold its channel's slot (a call slack_sdk retries after a 429 holds it meanwhile); past
# it the slot lapses by itself, so a worker killed mid-call blocks its channel at most this long.
PACE_HOLD_S = 30.0
# How often a waiter asks again while another worker's call is in flight in that channel.
PACE_POLL_S = 0.05
# The value of a slot cooling down after a call (any other value is the holder of a call in flight).
COOLDOWN = "cooldown"

PACE_SLOT = Key(
    "newsbot:slack:pace:{slot}",
    'the holder of the call in flight, or "cooldown" (SlackPace); `<slot>` is `<method>:<channel>`',
    "PACE_HOLD_S while a call is in flight, then SLACK_PACE_S after it ends",
)

# Take the slot (KEYS[1]) for ARGV[1] for ARGV[2] ms: 0 when taken, else the ms (at least 1) to wait before asking
# again: the cooldown's PTTL (ARGV[4] is its value), or at most ARGV[3] while another call holds the slot.
_TAKE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return 0
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 1 then
    return 1
end
if redis.call('GET', KEYS[1]) == ARGV[4] then
    return ttl
end
return math.min(ttl, tonumber(ARGV[3]))
"""
# Hand the slot back: a cooldown of ARGV[2] ms, if ARGV[1] still holds it or nobody does (its hold lapsed).
_GIVE_BACK = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] or not holder then
    redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
    return 1
end
return 0
"""


class SlackPace:
    """At most one call per SLACK_PACE_S for each (method, channel), across every process sharing ``connection``.

    ``interval_s`` 0 turns the pace off. With Redis unreachable a call goes ahead unpaced (logged): slack_sdk's
    429 handling still holds it back, and the job's own Redis writes report the outage.
    """

    def __init__(
        self,
        connection: Redis,
        interval_s: float,
        *,
        hold_s: float = PACE_HOLD_S,
        poll_s: float = PACE_POLL_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.connection = connection
        self.interval_s = interval_s
        self.hold_s = hold_s
        self.poll_s = poll_s
        self._sleep = sleep
        self._take = connection.register_script(_TAKE)
        self._give_back = connection.register_script(_GIVE_BACK)

    @staticmethod
    def key_for(method: str, channel: str) -> str:
        return PACE_SLOT.key_for(f"{method}:{channel}")

    def _ms(self, seconds: float) -> int:
        return max(1, round(seconds * 1000))

    def acquire(self, method: str, channel: str) -> tuple[str, float]:
        """Wait for ``method``'s turn in ``channel`` and take it; the holder id and the seconds waited."""
        key, holder, waited = self.key_for(method, channel), uuid.uuid4().hex, 0.0
        args: list[str | int] = [holder, self._ms(self.hold_s), self._ms(self.poll_s), COOLDOWN]
        while True:
            wait_ms = int(self._take(keys=[key], args=args))
            if wait_ms <= 0:
                return holder, waited
            self._sleep(wait_ms / 1000)
            waited += wait_ms / 1000

    def release(self, method: str, channel: str, holder: str) -> None:
        """End ``holder``'s call: the next call in ``channel`` may start SLACK_PACE_S from now."""
        self._give_back(keys=[self.key_for(method, channel)], args=[holder, self._ms(self.interval_s), COOLDOWN])

    @contextmanager
    def slot(self, method: str, channel: str) -> Iterator[float]:
        """Wait for ``method``'s turn in ``channel`` (the seconds waited), make the call in the block; the next
        call there, from any worker, starts at least ``interval_s`` after the block ends."""
        if self.interval_s <= 0:
            yield 0.0
            return
        try:
            holder, waited = self.acquire(method, channel)
        except RedisError as exc:
            log.warning("Slack pace of %s in %s unavailable (%s): calling unpaced", method, channel, exc)
            yield 0.0
            return
        try:
            yield waited
        finally:
            try:
                self.release(method, channel, holder)
            except RedisError as exc:  # the hold lapses by itself after hold_s
                log.warning("Slack pace of %s in %s not handed back (%s)", method, channel, exc)


# --- a dead token ---------------------------------------------------------------------------------------------------

# Slack's answers that mean the token itself is dead (revoked, the app uninstalled, a deactivated account): retrying
# with it can never succeed. The one list: the workers hold jobs on these, readiness (bot.slack_client) turns false.
DEAD_TOKEN_ERRORS = frozenset({"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"})


def fingerprint(token: str) -> str:
    """Which token a record is about, without the token: the first 12 hex digits of its SHA-256."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class TokenState:
    """The bot token was found revoked: Slack's ``reason``, ``at`` (ISO 8601, UTC), who saw it (``source``: a
    worker's name, or ``event:app_uninstalled``), and the token's :func:`fingerprint`."""

    KEY: ClassVar[Key] = Key(
        "newsbot:slack:token",
        "JSON: the token found revoked, why, when, by whom (TokenState)",
        "until a worker's auth.test succeeds again",
    )

    reason: str
    at: str
    source: str
    token: str  # the fingerprint

    @classmethod
    def key_for(cls) -> str:
        return cls.KEY.key_for()

    def encode(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def decode(cls, raw: bytes | str) -> TokenState:
        data: dict[str, Any] = json.loads(as_str(raw))
        return cls(
            reason=str(data.get("reason", "")),
            at=str(data.get("at", "")),
            source=str(data.get("source", "")),
            token=str(data.get("token", "")),
        )


def token_state(connection: Redis) -> TokenState | None:
    """The revoked token's record; None while no token is known to be revoked."""
    raw: Any = connection.get(TokenState.key_for())
    return None if raw is None else TokenState.decode(raw)


def mark_revoked(connection: Redis, token: str | None, reason: str, source: str) -> bool:
    """Record ``token`` as revoked (Slack's ``reason``, seen by ``source``); True when it was not recorded yet
    (the caller logs it once), False when it already was."""
    state = TokenState(
        reason=reason,
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        source=source,
        token=fingerprint(token or ""),
    )
    earlier = token_state(connection)
    connection.set(TokenState.key_for(), state.encode())
    return earlier is None or earlier.token != state.token


def clear_revoked(connection: Redis) -> TokenState | None:
    """Forget the revoked token (a worker's auth.test succeeded); the record that was there, if any."""
    raw: Any = connection.getdel(TokenState.key_for())
    return None if raw is None else TokenState.decode(raw)


def revoked_reason(connection: Redis, token: str | None = None) -> str | None:
    """:func:`token_revoked`, raising RedisError when Redis cannot be asked (for the metric: no sample then)."""
    state = token_state(connection)
    if state is None or (token is not None and state.token != fingerprint(token)):
        return None
    return state.reason


def token_revoked(connection: Redis, token: str | None = None) -> str | None:
    """Why the bot token is revoked (Slack's error, e.g. ``token_revoked``), or None while it is not known to be.

    For readiness: pass the process's own SLACK_BOT_TOKEN as ``token`` and only a record about that token counts
    (a record about a token since replaced does not). None, too, when Redis cannot be asked (readiness reports
    Redis itself).
    """
    try:
        return revoked_reason(connection, token)
    except RedisError:
        return None
