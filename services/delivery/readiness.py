"""What the delivery worker's ``/readyz`` checks: the agent connected and not waiting for a
dependency, PostgreSQL, Redis, and Kafka as both the producer and the consumer see it.

The endpoint is polled, so the Kafka checks cost no I/O while connections are up and run
at most once per interval otherwise; every check is bounded by ``run_checks``' timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from faust.types import TP

from services.delivery.runtime import DeliveryClients, DeliveryRuntime
from shared.observability import ReadinessCheck
from shared.topics import SENDS


class Holder(Protocol):
    clients: DeliveryClients | None
    runtime: DeliveryRuntime | None


class Probe:
    """A check run at most once per ``interval`` and never twice at once: a probe of a
    broker that is down may take seconds, and callers must not pile up behind it."""

    def __init__(self, check: Callable[[], Awaitable[None]], interval: float = 2.0) -> None:
        self.check, self.interval = check, interval
        self._task: asyncio.Future[None] | None = None
        self._started = 0.0

    async def __call__(self) -> None:
        now = time.monotonic()
        if self._task is None or (self._task.done() and now - self._started >= self.interval):
            if self._task is not None and not self._task.cancelled():
                self._task.exception()  # seen: asyncio would log it as never retrieved
            self._task = asyncio.ensure_future(self.check())
            self._started = now
        await asyncio.shield(self._task)


async def producer_reaches_kafka(producer: AIOKafkaProducer) -> None:
    """The producer has (or can open) a connection to a broker; no I/O while it has one."""
    client = producer.client
    for broker in client.cluster.brokers():
        if await client.ready(broker.nodeId):
            return
    raise ConnectionError("the producer reaches no Kafka broker")


async def consumer_reaches_kafka(consumer: Any) -> None:
    """The faust consumer's own connection answers: the end offset of a partition it reads."""
    assigned = sorted(consumer.assignment()) or [TP(SENDS.name, 0)]
    await consumer.highwaters(assigned[0])


def readiness_checks(holder: Holder, consumer: Callable[[], Any]) -> dict[str, ReadinessCheck]:
    def clients() -> DeliveryClients:
        if holder.clients is None:
            raise RuntimeError("the delivery agent has not connected yet")
        return holder.clients

    producer_probe = Probe(lambda: producer_reaches_kafka(clients().producer))
    consumer_probe = Probe(lambda: consumer_reaches_kafka(consumer()))

    async def agent() -> None:
        if holder.runtime is None:
            raise RuntimeError("the delivery agent has not connected yet")
        if holder.runtime.health.down:
            raise RuntimeError(f"waiting for {holder.runtime.health.down}")

    async def postgres() -> None:
        await clients().pool.fetchval("SELECT 1")

    async def redis() -> None:
        await clients().redis.ping()

    async def kafka() -> None:
        clients()
        await producer_probe()
        await consumer_probe()

    return {"agent": agent, "postgres": postgres, "redis": redis, "kafka": kafka}
