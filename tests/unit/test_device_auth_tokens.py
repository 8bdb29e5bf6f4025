"""Sync verifies a device token once and then remembers it until its exp, never beyond,
and never for a secret the app no longer has. A fake pool holds the apps table; a fake
clock moves time (PyJWT itself checks exp against the real clock)."""

from __future__ import annotations

import time
from typing import Any, cast

import asyncpg
import jwt
import pytest

from services.sync.auth import AppCache, Unauthorized, verify


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Apps:
    """The apps table, as AppCache reads it."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    async def fetchrow(self, sql: str, key: str) -> dict[str, Any] | None:
        return self.rows.get(key)


def _cache(table: Apps, clock: Clock, **limits: Any) -> AppCache:
    return AppCache(cast(asyncpg.Pool, table), ttl_seconds=60, timer=clock, clock=clock, **limits)


def _token(secret: str, contact_id: str, exp: float) -> str:
    return "Bearer " + jwt.encode({"sub": contact_id, "exp": int(exp)}, secret, "HS256")


async def test_a_verified_token_is_refused_once_its_exp_has_passed() -> None:
    table, clock = Apps(), Clock()
    table.rows["k"] = {"app_key": "k", "secret": "s", "next_sync_after_seconds": 60}
    apps = _cache(table, clock)
    exp = int(clock.now) + 30
    token = _token("s", "c-1", exp)
    for _ in range(3):
        assert (await verify(apps, "k", token)).contact_id == "c-1"
    clock.now = exp - 0.5
    assert (await verify(apps, "k", token)).contact_id == "c-1"
    clock.now = exp  # PyJWT's own rule: expired when exp <= now
    with pytest.raises(Unauthorized, match="expired"):
        await verify(apps, "k", token)
    with pytest.raises(Unauthorized, match="expired"):
        await verify(apps, "k", token)


async def test_a_token_signed_with_a_replaced_secret_is_refused_once_the_app_reloads() -> None:
    table, clock = Apps(), Clock()
    table.rows["k"] = {"app_key": "k", "secret": "old", "next_sync_after_seconds": 60}
    apps = _cache(table, clock)
    old = _token("old", "c-1", clock.now + 3600)
    assert (await verify(apps, "k", old)).contact_id == "c-1"
    table.rows["k"] = {**table.rows["k"], "secret": "new"}
    clock.now += 61  # the app cache's TTL: sync now knows the new secret
    with pytest.raises(Unauthorized, match="invalid user token"):
        await verify(apps, "k", old)
    new = _token("new", "c-1", clock.now + 3600)
    assert (await verify(apps, "k", new)).contact_id == "c-1"


async def test_a_token_verified_for_one_app_is_not_taken_for_another() -> None:
    table, clock = Apps(), Clock()
    table.rows["a"] = {"app_key": "a", "secret": "sa", "next_sync_after_seconds": 60}
    table.rows["b"] = {"app_key": "b", "secret": "sb", "next_sync_after_seconds": 60}
    apps = _cache(table, clock)
    token = _token("sa", "c-1", clock.now + 3600)
    assert (await verify(apps, "a", token)).app.app_key == "a"
    with pytest.raises(Unauthorized, match="invalid user token"):
        await verify(apps, "b", token)


async def test_the_token_cache_is_bounded_and_evicted_tokens_still_verify() -> None:
    table, clock = Apps(), Clock()
    table.rows["k"] = {"app_key": "k", "secret": "s", "next_sync_after_seconds": 60}
    apps = _cache(table, clock, max_token_chars=2_000)
    tokens = [_token("s", f"c-{i}", clock.now + 3600) for i in range(50)]
    for i, token in enumerate(tokens):
        assert (await verify(apps, "k", token)).contact_id == f"c-{i}"
    assert apps._tokens.currsize <= 2_000 < 50 * len(tokens[0])
    assert (await verify(apps, "k", tokens[0])).contact_id == "c-0"
