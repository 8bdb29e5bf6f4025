"""The delivery agent: raw SendBatch bytes off pigeonhole.sends into the runtime."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from faust.contrib.asgi import serve_asgi

from services.delivery import metrics
from services.delivery.app import app, settings
from services.delivery.runtime import DeliveryRuntime
from shared.observability import ReadinessCheck
from shared.ops import NO_OTEL, install_ops_routes
from shared.topics import SENDS

__all__ = ["app", "deliver_batches"]

sends_topic = app.topic(SENDS.name, key_type=bytes, value_type=bytes, internal=False)


class RuntimeHolder:
    runtime: DeliveryRuntime | None = None


holder = RuntimeHolder()


@app.agent(sends_topic)
async def deliver_batches(stream: Any) -> None:
    runtime = await DeliveryRuntime.connect(settings)
    holder.runtime = runtime
    try:
        async for event in stream.events():
            message = event.message
            await runtime.handle(message.key, message.value, message.partition, message.offset)
            highwater = app.consumer.highwater(message.tp)
            if highwater is not None:
                lag = max(highwater - message.offset - 1, 0)
                metrics.CONSUMER_LAG.labels(str(message.partition)).set(lag)
    finally:
        holder.runtime = None
        await runtime.close()


ops = FastAPI(
    title="pigeonhole-delivery", docs_url=None, redoc_url=None, openapi_url=None,
    telemetry=NO_OTEL,
)  # fmt: skip


def _checks() -> dict[str, ReadinessCheck]:
    async def agent() -> None:
        if holder.runtime is None:
            raise RuntimeError("the delivery agent has not connected yet")

    async def postgres() -> None:
        assert holder.runtime is not None
        await holder.runtime.pool.fetchval("SELECT 1")

    async def redis() -> None:
        assert holder.runtime is not None
        await holder.runtime.redis.ping()

    return {"agent": agent, "postgres": postgres, "redis": redis}


install_ops_routes(ops, "delivery", _checks)
serve_asgi(
    app, ops, host=settings.web_host, port=settings.web_port, log_config=None, access_log=False
)
