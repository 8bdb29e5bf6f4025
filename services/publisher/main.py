"""Publisher wiring: settings, the PostgreSQL pool and Redis, routes, error envelope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.publisher.api import content, directory, sends
from services.publisher.errors import install_error_handlers
from shared.db import create_pool
from shared.observability import ReadinessCheck, configure_logging
from shared.ops import install_ops_routes, serve_http
from shared.settings import PublisherSettings


def create_app(settings: PublisherSettings | None = None) -> FastAPI:
    settings = settings or PublisherSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.pool = await create_pool(
            settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(
        title="Pigeonhole management API",
        version="0.1.0",
        description="Publish in-app and App Inbox content, manage apps and contacts, send.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for router in (content.router, sends.router, directory.router):
        app.include_router(router)

    def checks() -> dict[str, ReadinessCheck]:
        async def postgres() -> None:
            await app.state.pool.fetchval("SELECT 1")

        return {"postgres": postgres}

    install_ops_routes(app, "publisher", checks)
    return app


def main() -> None:
    settings = PublisherSettings()
    configure_logging("publisher", settings.log_level)
    serve_http(create_app(settings), settings.host, settings.port)


if __name__ == "__main__":
    main()
