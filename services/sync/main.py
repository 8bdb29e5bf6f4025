"""Sync wiring: settings, PostgreSQL pool, Redis, device routes, ops endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, Request

from services.sync import handlers
from services.sync.auth import AppCache, Device, authenticate
from shared.db import create_pool
from shared.observability import ReadinessCheck, configure_logging
from shared.ops import install_ops_routes, serve_http
from shared.settings import SyncSettings

AuthenticatedDevice = Annotated[Device, Depends(authenticate)]


def create_app(settings: SyncSettings | None = None) -> FastAPI:
    settings = settings or SyncSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await create_pool(
            settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        app.state.redis = aioredis.from_url(settings.redis_url)
        app.state.apps = AppCache(app.state.pool)
        try:
            yield
        finally:
            await app.state.redis.aclose()
            await app.state.pool.close()

    app = FastAPI(
        title="Pigeonhole device API",
        version="0.1.0",
        lifespan=lifespan,
    )

    @app.post("/v1/sync")
    async def sync(
        body: handlers.SyncRequest, request: Request, device: AuthenticatedDevice
    ) -> Any:
        """The phone home: pending in-app messages for this platform, or "nothing new"."""
        return await handlers.sync(request.app.state.pool, request.app.state.redis, device, body)

    def checks() -> dict[str, ReadinessCheck]:
        async def postgres() -> None:
            await app.state.pool.fetchval("SELECT 1")

        async def redis() -> None:
            await app.state.redis.ping()

        return {"postgres": postgres, "redis": redis}

    install_ops_routes(app, "sync", checks)
    return app


def main() -> None:
    settings = SyncSettings()
    configure_logging("sync", settings.log_level)
    serve_http(create_app(settings), settings.host, settings.port)


if __name__ == "__main__":
    main()
