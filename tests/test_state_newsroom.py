"""Watched channels and routes round-trip through Redis via common/state.py."""

from __future__ import annotations

import redis

from common import state


def test_watches_are_kept_listed_and_removed(redis_conn: redis.Redis) -> None:
    assert state.watches(redis_conn) == []
    state.put_watch(redis_conn, state.Watch(channel="C2", by="UADMIN", at=2.0))
    state.put_watch(redis_conn, state.Watch(channel="C1", by="UADMIN", at=1.0))
    assert [w.channel for w in state.watches(redis_conn)] == ["C1", "C2"]
    assert state.watch_of(redis_conn, "C1") == state.Watch(channel="C1", by="UADMIN", at=1.0)
    assert state.remove_watch(redis_conn, "C1") is True
    assert state.remove_watch(redis_conn, "C1") is False
    assert state.watch_of(redis_conn, "C1") is None


def test_routes_are_kept_replaced_and_cleared(redis_conn: redis.Redis) -> None:
    state.put_route(redis_conn, state.Route(label="sports-watch", channel="CSPORT", by="UA", at=1.0))
    state.put_route(redis_conn, state.Route(label="sports-watch", channel="CDESK", by="UB", at=2.0, warned=True))
    assert state.routes(redis_conn) == [state.Route("sports-watch", "CDESK", "UB", 2.0, warned=True)]
    assert state.route_of(redis_conn, "peachy") is None
    assert state.remove_route(redis_conn, "sports-watch") is True
    assert state.routes(redis_conn) == []
