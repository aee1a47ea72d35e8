"""Watched channels and routes round-trip through Redis via store/newsroom.py."""

from __future__ import annotations

import redis

from store import newsroom


def test_watches_are_kept_listed_and_removed(redis_conn: redis.Redis) -> None:
    assert newsroom.watches(redis_conn) == []
    newsroom.put_watch(redis_conn, newsroom.Watch(channel="C2", by="UADMIN", at=2.0))
    newsroom.put_watch(redis_conn, newsroom.Watch(channel="C1", by="UADMIN", at=1.0))
    assert [w.channel for w in newsroom.watches(redis_conn)] == ["C1", "C2"]
    assert newsroom.watch_of(redis_conn, "C1") == newsroom.Watch(channel="C1", by="UADMIN", at=1.0)
    assert newsroom.remove_watch(redis_conn, "C1") is True
    assert newsroom.remove_watch(redis_conn, "C1") is False
    assert newsroom.watch_of(redis_conn, "C1") is None


def test_routes_are_kept_replaced_and_cleared(redis_conn: redis.Redis) -> None:
    newsroom.put_route(redis_conn, newsroom.Route(label="sports-watch", channel="CSPORT", by="UA", at=1.0))
    newsroom.put_route(redis_conn, newsroom.Route(label="sports-watch", channel="CDESK", by="UB", at=2.0, warned=True))
    assert newsroom.routes(redis_conn) == [newsroom.Route("sports-watch", "CDESK", "UB", 2.0, warned=True)]
    assert newsroom.route_of(redis_conn, "peachy") is None
    assert newsroom.remove_route(redis_conn, "sports-watch") is True
    assert newsroom.routes(redis_conn) == []
