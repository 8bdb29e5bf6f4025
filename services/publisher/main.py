"""Publisher wiring: settings, the PostgreSQL pool and Redis, routes, error envelope."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.publisher.api import content, directory, inbox, sends
from services.publisher.errors import install_error_handlers
from services.publisher.ingest import run_ingest
from shared.db import create_pool
from shared.kafka import durable_producer
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
        app.state.producer = durable_producer(settings.kafka_bootstrap, "pigeonhole-publisher")
        await app.state.producer.start()
        app.state.ingest = asyncio.create_task(
            run_ingest(app.state.pool, settings.kafka_bootstrap, app.state.producer),
            name="contact-ingest",
        )
        try:
            yield
        finally:
            app.state.ingest.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await app.state.ingest
            await app.state.producer.stop()
            await app.state.pool.close()

    app = FastAPI(
        title="Pigeonhole management API",
        version="0.1.0",
        description="Publish in-app and App Inbox content, manage apps and contacts, send.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for router in (content.router, inbox.router, sends.router, directory.router):
        app.include_router(router)

    def checks() -> dict[str, ReadinessCheck]:
        async def postgres() -> None:
            await app.state.pool.fetchval("SELECT 1")

        async def contact_ingest() -> None:
            task: asyncio.Task[None] = app.state.ingest
            if task.done():
                raise RuntimeError("the contacts consumer has stopped; see the log")

        return {"postgres": postgres, "contact_ingest": contact_ingest}

    install_ops_routes(app, "publisher", checks)
    return app


def main() -> None:
    settings = PublisherSettings()
    configure_logging("publisher", settings.log_level)
    serve_http(create_app(settings), settings.host, settings.port)


if __name__ == "__main__":
    main()
