"""The TTL caches in front of PostgreSQL: delivery's contents, app limits and tag caps, and
sync's apps. A fake pool answers from a table the test changes; a fake clock moves time."""

from __future__ import annotations

from typing import Any, cast

import asyncpg

from services.delivery.adapters import PgDeliveryStore
from services.sync.auth import App, AppCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakePool:
    """Rows by table, and how many queries reached the "database"."""

    def __init__(self) -> None:
        self.apps: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, dict[str, Any]] = {}
        self.queries = 0

    async def fetchrow(self, sql: str, key: str) -> dict[str, Any] | None:
        self.queries += 1
        table = self.contents if "FROM contents" in sql else self.apps
        return table.get(key)

    async def fetch(self, sql: str, keys: list[str]) -> list[dict[str, Any]]:
        self.queries += 1
        assert "FROM apps" in sql
        return [self.apps[k] for k in keys if k in self.apps]


def _content(content_id: str) -> dict[str, Any]:
    return {
        "id": content_id, "kind": "inapp", "body": {}, "personalization_defaults": {},
        "personalization_formulas": {}, "category": None, "tags": [], "ttl_seconds": None,
    }  # fmt: skip


def _app(key: str, secret: str) -> dict[str, Any]:
    return {"app_key": key, "secret": secret, "next_sync_after_seconds": 60,
            "frequency_limits": {"perDay": 3}}  # fmt: skip


async def test_sync_sees_a_changed_secret_only_after_the_ttl_and_caches_unknown_keys() -> None:
    pool, clock = FakePool(), Clock()
    apps = AppCache(cast(asyncpg.Pool, pool), ttl_seconds=60, timer=clock)
    pool.apps["k"] = _app("k", "old")
    assert await apps.get("k") == App("k", "old", 60)
    pool.apps["k"] = _app("k", "new")
    clock.now = 59
    assert (await apps.get("k") or App("", "", 0)).secret == "old"
    clock.now = 61
    assert (await apps.get("k") or App("", "", 0)).secret == "new"
    assert await apps.get("nope") is None
    assert await apps.get("nope") is None
    assert pool.queries == 3  # "k" twice, "nope" once


async def test_sync_app_cache_is_bounded_by_evicting_the_least_recently_used() -> None:
    pool, clock = FakePool(), Clock()
    apps = AppCache(cast(asyncpg.Pool, pool), max_apps=2, timer=clock)
    for key in ("a", "b", "a", "c"):  # "b" is the least recently used when "c" arrives
        await apps.get(key)
    before = pool.queries
    await apps.get("a")
    await apps.get("c")
    assert pool.queries == before
    await apps.get("b")
    assert pool.queries == before + 1


async def test_delivery_caches_contents_including_a_missing_one_until_the_ttl() -> None:
    pool, clock = FakePool(), Clock()
    store = PgDeliveryStore(cast(asyncpg.Pool, pool), content_ttl_seconds=30, timer=clock)
    pool.contents["c1"] = _content("c1")
    first = await store.content("c1")
    assert first is not None and first.id == "c1"
    assert await store.content("gone") is None
    pool.contents["gone"] = _content("gone")
    clock.now = 29
    assert await store.content("c1") == first
    assert await store.content("gone") is None
    assert pool.queries == 2
    clock.now = 31
    assert await store.content("gone") is not None


async def test_delivery_sees_changed_app_limits_within_the_limits_ttl() -> None:
    pool, clock = FakePool(), Clock()
    store = PgDeliveryStore(cast(asyncpg.Pool, pool), limits_ttl_seconds=10, timer=clock)
    pool.apps["k"] = _app("k", "s")
    assert await store.app_limits(["k"]) == {"k": {"perDay": 3}}
    pool.apps["k"] = {**_app("k", "s"), "frequency_limits": {"perDay": 1}}
    clock.now = 9
    assert await store.app_limits(["k"]) == {"k": {"perDay": 3}}
    clock.now = 11
    assert await store.app_limits(["k"]) == {"k": {"perDay": 1}}
