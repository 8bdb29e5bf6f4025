"""The delivery agent: raw SendBatch bytes off pigeonhole.sends into the runtime.

Acks are manual (``stream.noack()``): faust acks an event when the next one is taken or
when the stream closes, so an agent that stops mid-event (a crash, a shutdown) would ack
an event nobody handled. Here an event is acked only after ``runtime.handle`` returned,
that is once it is delivered or dead-lettered; an event in flight when the worker stops
is delivered again by whoever owns its partition next (filing is idempotent).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from faust.contrib.asgi import serve_asgi
from faust.types import TP

from services.delivery import metrics
from services.delivery.app import app, settings
from services.delivery.runtime import DeliveryClients, DeliveryRuntime
from shared.observability import ReadinessCheck
from shared.ops import NO_OTEL, install_ops_routes
from shared.topics import SENDS

__all__ = ["app", "deliver_batches"]

log = logging.getLogger(__name__)

sends_topic = app.topic(SENDS.name, key_type=bytes, value_type=bytes, internal=False)


class RuntimeHolder:
    clients: DeliveryClients | None = None
    runtime: DeliveryRuntime | None = None


holder = RuntimeHolder()


@app.agent(sends_topic)
async def deliver_batches(stream: Any) -> None:
    clients = await DeliveryClients.connect(settings)
    runtime = clients.runtime()
    holder.clients, holder.runtime = clients, runtime
    try:
        events = stream.noack()
        async for event in events.events():
            message = event.message
            await runtime.handle(message.key, message.value, message.partition, message.offset)
            await events.ack(event)  # delivered or dead-lettered: never before
            _record_lag(message)
    finally:
        holder.clients = holder.runtime = None
        await clients.close()


def _record_lag(message: Any) -> None:
    highwater = app.consumer.highwater(message.tp)
    if highwater is not None:
        lag = max(highwater - message.offset - 1, 0)
        metrics.CONSUMER_LAG.labels(str(message.partition)).set(lag)


ops = FastAPI(
    title="pigeonhole-delivery", docs_url=None, redoc_url=None, openapi_url=None,
    telemetry=NO_OTEL,
)  # fmt: skip


class Probe:
    """A dependency probe run at most once per ``interval`` and never twice at once: the
    readiness endpoint is polled, and a probe of a broker that is down may take seconds.
    A caller waits for the probe in flight, bounded by the readiness check's own timeout."""

    def __init__(self, check: Callable[[], Awaitable[None]], interval: float = 2.0) -> None:
        self.check, self.interval = check, interval
        self._task: asyncio.Future[None] | None = None
        self._started = 0.0

    async def __call__(self) -> None:
        now = time.monotonic()
        if self._task is None or (self._task.done() and now - self._started >= self.interval):
            self._task = asyncio.ensure_future(self.check())
            self._started = now
        await asyncio.shield(self._task)


async def _producer_reaches_kafka() -> None:
    """The producer has (or can open) a connection to a broker. No I/O while it has one."""
    assert holder.clients is not None
    client = holder.clients.producer.client
    for broker in client.cluster.brokers():
        if await client.ready(broker.nodeId):
            return
    raise ConnectionError("the producer reaches no Kafka broker")


async def _consumer_reaches_kafka() -> None:
    """The consumer's own connection answers: the end offset of one partition it reads."""
    assigned = sorted(app.consumer.assignment()) or [TP(SENDS.name, 0)]
    await app.consumer.highwaters(assigned[0])


_kafka_probes = (Probe(_producer_reaches_kafka), Probe(_consumer_reaches_kafka))


def _checks() -> dict[str, ReadinessCheck]:
    async def agent() -> None:
        if holder.runtime is None:
            raise RuntimeError("the delivery agent has not connected yet")
        if holder.runtime.health.down:
            raise RuntimeError(f"waiting for {holder.runtime.health.down}")

    async def postgres() -> None:
        assert holder.clients is not None
        await holder.clients.pool.fetchval("SELECT 1")

    async def redis() -> None:
        assert holder.clients is not None
        await holder.clients.redis.ping()

    async def kafka() -> None:
        assert holder.clients is not None
        for probe in _kafka_probes:
            await probe()

    return {"agent": agent, "postgres": postgres, "redis": redis, "kafka": kafka}


install_ops_routes(ops, "delivery", _checks)
serve_asgi(
    app, ops, host=settings.web_host, port=settings.web_port, log_config=None, access_log=False
)
