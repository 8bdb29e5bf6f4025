"""Sync wiring: settings, PostgreSQL pool, Redis, device routes, ops endpoints."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from services.sync import routes
from services.sync.auth import AppCache
from services.sync.errors import install_error_handlers, render_refusal
from services.sync.fast_path import DeviceApi
from shared.db import create_pool
from shared.http_limits import InputGuard
from shared.kafka import durable_producer
from shared.observability import ReadinessCheck, configure_logging
from shared.ops import NO_OTEL, install_ops_routes, serve_http
from shared.settings import SyncSettings


def create_app(settings: SyncSettings | None = None) -> FastAPI:
    settings = settings or SyncSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await create_pool(
            settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        app.state.redis = aioredis.from_url(settings.redis_url)
        app.state.apps = AppCache(app.state.pool)
        app.state.producer = durable_producer(settings.kafka_bootstrap, "pigeonhole-sync")
        await app.state.producer.start()
        # What start-up made (modules, routes, clients) lives as long as the process: keep
        # it out of the collector's scans, which otherwise walk all of it again and again.
        gc.freeze()
        try:
            yield
        finally:
            await app.state.producer.stop()
            await app.state.redis.aclose()
            await app.state.pool.close()

    app = DeviceApi(  # answers the phone home itself (services/sync/fast_path.py)
        title="Pigeonhole device API",
        version="0.1.0",
        lifespan=lifespan,
        telemetry=NO_OTEL,
    )

    install_error_handlers(app)
    app.include_router(routes.router)
    app.add_middleware(InputGuard, max_body_bytes=settings.max_body_bytes, render=render_refusal)
    # Web pages on the customer's own origins call the device API; credentials travel in
    # headers (never cookies), so any origin may call it.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "X-App-Key"],
        max_age=3600,
    )

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
    serve_http(create_app(settings), settings)


if __name__ == "__main__":
    main()
