"""Publisher wiring: settings, the PostgreSQL pool and Redis, routes, error envelope."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.publisher.apps import routes as apps
from services.publisher.contacts import routes as contacts
from services.publisher.contacts.sources import routes as sources
from services.publisher.content import routes as content
from services.publisher.errors import install_error_handlers, render_refusal
from services.publisher.ingest.consumers import Ingest, consume, consumers
from services.publisher.keys import routes as keys
from services.publisher.sends import routes as sends
from services.publisher.sends.campaigns import routes as campaigns
from services.publisher.stats import routes as stats
from services.publisher.webhooks import routes as webhooks
from services.publisher.webhooks.service import Webhooks
from shared.db import create_pool
from shared.http_limits import InputGuard
from shared.kafka import durable_producer
from shared.observability import ReadinessCheck, configure_logging
from shared.ops import NO_OTEL, install_ops_routes, serve_http
from shared.rate_limits import RateLimiter
from shared.settings import PublisherSettings
from shared.topics import CONTACTS, DELIVERIES, ENGAGEMENT, SEND_REQUESTS


def create_app(settings: PublisherSettings | None = None) -> FastAPI:
    settings = settings or PublisherSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.pool = await create_pool(
            settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        app.state.limiter = RateLimiter(settings.redis_url)  # per API token (auth.py)
        app.state.producer = durable_producer(settings.kafka_bootstrap, "pigeonhole-publisher")
        await app.state.producer.start()
        ingest = Ingest(app.state.pool, app.state.producer)
        per_topic = {
            CONTACTS.name: ingest.contacts,
            SEND_REQUESTS.name: ingest.send_requests,
            DELIVERIES.name: ingest.deliveries,
            ENGAGEMENT.name: ingest.engagement,
        }
        app.state.consumers = {
            topic: asyncio.create_task(consume(consumer, per_topic[topic]), name=topic)
            for topic, consumer in consumers(settings.kafka_bootstrap).items()
        }
        hooks = Webhooks(app.state.pool, settings)  # docs/webhooks.md
        app.state.webhooks = hooks.dispatcher
        app.state.consumers.update(hooks.tasks())
        try:
            yield
        finally:
            for task in app.state.consumers.values():
                task.cancel()
            for task in app.state.consumers.values():
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await app.state.producer.stop()
            await app.state.pool.close()

    app = FastAPI(
        title="Pigeonhole management API",
        version="0.1.0",
        description="Publish in-app and App Inbox content, manage apps and contacts, send.",
        lifespan=lifespan,
        telemetry=NO_OTEL,
    )
    install_error_handlers(app)
    for router in (
        content.router,
        sends.router,
        campaigns.router,
        apps.router,
        contacts.router,
        sources.router,
        stats.router,
        keys.router,
        webhooks.router,
    ):
        app.include_router(router)
    app.add_middleware(
        InputGuard,
        max_body_bytes=settings.max_body_bytes,
        render=render_refusal,
        # these read their body as it streams in, each with its own limits
        streamed=frozenset({("POST", "/media"), ("POST", "/contacts/batch")}),
    )

    def checks() -> dict[str, ReadinessCheck]:
        async def postgres() -> None:
            await app.state.pool.fetchval("SELECT 1")

        async def kafka_consumers() -> None:
            stopped = [topic for topic, task in app.state.consumers.items() if task.done()]
            if stopped:
                raise RuntimeError(f"consumer(s) stopped: {', '.join(stopped)}; see the log")

        return {"postgres": postgres, "kafka_consumers": kafka_consumers}

    install_ops_routes(app, "publisher", checks)
    return app


def main() -> None:
    settings = PublisherSettings()
    configure_logging("publisher", settings.log_level)
    serve_http(create_app(settings), settings)


if __name__ == "__main__":
    main()
