"""The "nothing new" phone home answers from one Redis round trip and makes no
PostgreSQL query. The sync app runs in-process against the real PostgreSQL and Redis,
with its pool wrapped to count every use."""

from __future__ import annotations

from typing import Any, cast

import httpx
import redis.asyncio as aioredis

from services.sync.main import create_app
from shared.redis_keys import InboxVersions
from shared.settings import SyncSettings
from tests.conftest import device_token


class CountingPool:
    """The real pool, counting each query and connection it hands out."""

    def __init__(self, pool: Any) -> None:
        self._pool, self.uses = pool, 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._pool, name)
        if name in ("fetch", "fetchrow", "fetchval", "execute", "executemany", "acquire"):
            self.uses += 1
        return attr


class CountingRedis:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis, self.commands = redis, 0

    def __getattr__(self, name: str) -> Any:
        if name in ("get", "set", "pipeline", "execute_command", "incr", "mget"):
            self.commands += 1
        return getattr(self._redis, name)


async def test_unchanged_cursor_makes_no_postgres_query(app: dict[str, str]) -> None:
    sync_app = create_app(SyncSettings())
    async with sync_app.router.lifespan_context(sync_app):
        pool = CountingPool(sync_app.state.pool)
        redis = CountingRedis(sync_app.state.redis)
        sync_app.state.pool, sync_app.state.apps.pool, sync_app.state.redis = pool, pool, redis
        sync_app.state.versions = InboxVersions(cast(aioredis.Redis, redis))
        headers = {
            "X-App-Key": app["appKey"],
            "Authorization": f"Bearer {device_token(app['appSecret'], 'nothing-new-1')}",
        }
        transport = httpx.ASGITransport(app=sync_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sync") as client:
            first = (
                await client.post("/v1/sync", json={"platform": "gcm"}, headers=headers)
            ).json()
            assert first["changed"] is True and pool.uses > 0
            pool.uses, redis.commands = 0, 0
            for _ in range(20):
                answer = await client.post(
                    "/v1/sync", json={"platform": "gcm", "cursor": first["cursor"]}, headers=headers
                )
                assert answer.json()["changed"] is False
    assert pool.uses == 0
    assert redis.commands == 20  # one read per phone home (an MGET of one key: one at a time)
