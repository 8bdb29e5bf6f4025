"""Sync during an app secret rotation: the previous secret verifies until its deadline
(exactly, even for a token verified before) or its retirement (seen when the app is read
again); a new secret verifies within RELOAD_SECONDS; a forged token cannot make sync read
the app more often than that. A fake pool holds the apps table; a fake clock moves time."""

from __future__ import annotations

import time
from typing import Any, cast

import asyncpg
import jwt
import pytest

from services.sync.auth import APP_CACHE_SECONDS, RELOAD_SECONDS, AppCache, Unauthorized, verify


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Apps:
    """The apps table, as AppCache reads it; counts the reads."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.reads = 0

    async def fetchrow(self, sql: str, key: str) -> dict[str, Any] | None:
        self.reads += 1
        return self.rows.get(key)


def _app(secret: str, previous: str | None = None, until: float = 0.0) -> dict[str, Any]:
    return {"app_key": "k", "secret": secret, "next_sync_after_seconds": 60,
            "previous_secret": previous, "previous_until": until if previous else None,
            "device_requests_per_minute": None}  # fmt: skip


def _token(secret: str, contact_id: str, clock: Clock) -> str:
    return "Bearer " + jwt.encode({"sub": contact_id, "exp": int(clock.now) + 3600}, secret)


def _setup() -> tuple[Apps, Clock, AppCache]:
    table, clock = Apps(), Clock()
    apps = AppCache(cast(asyncpg.Pool, table), timer=clock, clock=clock)
    return table, clock, apps


async def test_the_previous_secret_verifies_until_its_deadline_then_only_the_new_one() -> None:
    table, clock, apps = _setup()
    deadline = clock.now + 5
    table.rows["k"] = _app("new", previous="old", until=deadline)
    old, new = _token("old", "c-1", clock), _token("new", "c-1", clock)
    assert (await verify(apps, "k", old)).contact_id == "c-1"  # verified, now cached
    assert (await verify(apps, "k", new)).contact_id == "c-1"
    clock.now = deadline - 0.1
    assert (await verify(apps, "k", old)).contact_id == "c-1"
    clock.now = deadline  # the app is still cached: the deadline itself is checked
    with pytest.raises(Unauthorized, match="invalid user token"):
        await verify(apps, "k", old)
    assert (await verify(apps, "k", new)).contact_id == "c-1"


async def test_a_retired_secret_stops_verifying_when_sync_reads_the_app_again() -> None:
    table, clock, apps = _setup()
    table.rows["k"] = _app("new", previous="old", until=clock.now + 86_400)
    old = _token("old", "c-1", clock)
    assert (await verify(apps, "k", old)).contact_id == "c-1"
    table.rows["k"] = _app("new")  # retired
    clock.now += APP_CACHE_SECONDS + 0.1
    with pytest.raises(Unauthorized, match="invalid user token"):
        await verify(apps, "k", old)
    assert (await verify(apps, "k", _token("new", "c-1", clock))).contact_id == "c-1"


async def test_a_new_secret_verifies_within_a_second_and_forgeries_do_not_flood_postgres() -> None:
    table, clock, apps = _setup()
    table.rows["k"] = _app("first")
    assert (await verify(apps, "k", _token("first", "c-1", clock))).contact_id == "c-1"
    table.rows["k"] = _app("second", previous="first", until=clock.now + 3600)  # rotated
    reads = table.reads
    forged = _token("forged", "c-1", clock)
    for _ in range(100):
        with pytest.raises(Unauthorized, match="invalid user token"):
            await verify(apps, "k", forged)
    assert table.reads == reads  # the app was read under RELOAD_SECONDS ago
    clock.now += RELOAD_SECONDS
    second = _token("second", "c-1", clock)
    assert (await verify(apps, "k", second)).contact_id == "c-1"  # read again, once
    assert table.reads == reads + 1
    for _ in range(100):
        with pytest.raises(Unauthorized, match="invalid user token"):
            await verify(apps, "k", forged)
    assert table.reads == reads + 1
