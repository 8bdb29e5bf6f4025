"""The delivery agent: raw SendBatch bytes off pigeonhole.sends into the runtime.

Acks are manual (``stream.noack()``): faust acks an event when the next one is taken or
when the stream closes, so an agent that stops mid-event (a crash, a shutdown) would ack
an event nobody handled. Here an event is acked only after ``runtime.handle`` returned,
that is once it is delivered or dead-lettered; an event in flight when the worker stops
is delivered again by whoever owns its partition next (filing is idempotent).

Up to ``batches_in_flight`` events are handled at once, so PostgreSQL, Redis, Kafka and
the worker's own CPU are busy at the same time instead of in turn: events of different
partitions side by side, those of one partition one after the other, in order. A
contact's batches all travel one partition (its bucket's), so its entries are filed in
the order its sends were scheduled (the App Inbox lists newest first by that order).
faust commits a partition's offset only up to the first event not yet acked, so a crash
re-delivers every unfinished one and skips none. On a rebalance faust waits for the
events in flight to be acked before it gives their partitions away.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from fastapi import FastAPI
from faust.contrib.asgi import serve_asgi

from services.delivery import metrics
from services.delivery.app import app, settings
from services.delivery.readiness import readiness_checks
from services.delivery.runtime import DeliveryClients, DeliveryRuntime
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
    slots = asyncio.Semaphore(settings.batches_in_flight)
    in_flight: set[asyncio.Task[None]] = set()
    last_of: dict[int, asyncio.Task[None]] = {}  # the newest event's task, per partition

    async def handle_and_ack(event: Any, before: asyncio.Task[None] | None) -> None:
        try:
            if before is not None:  # the partition's previous event first
                await asyncio.wait([before])
            await _handle(runtime, event.message)
            await events.ack(event)  # delivered or dead-lettered: never before
            _record_lag(event.message)
        finally:
            slots.release()

    def forget(partition: int, task: asyncio.Task[None]) -> None:
        in_flight.discard(task)
        if last_of.get(partition) is task:
            del last_of[partition]

    try:
        events = stream.noack()
        async for event in events.events():
            await slots.acquire()
            partition = event.message.partition
            task = asyncio.create_task(handle_and_ack(event, last_of.get(partition)))
            in_flight.add(task)
            last_of[partition] = task
            task.add_done_callback(functools.partial(forget, partition))
    finally:
        # stopping: what is unfinished stays unacked and is delivered again by the next owner
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        holder.clients = holder.runtime = None
        await clients.close()


async def _handle(runtime: DeliveryRuntime, message: Any) -> None:
    """``runtime.handle`` raises nothing by design; should a bug make it raise, the same
    event is tried again (never acked, never crashing the agent, which would ack it)."""
    while True:
        try:
            await runtime.handle(message.key, message.value, message.partition, message.offset)
            return
        except Exception:
            log.exception("the deliverer raised, trying the event again")
            await asyncio.sleep(5)


def _record_lag(message: Any) -> None:
    try:
        highwater = app.consumer.highwater(message.tp)
    except Exception:  # a gauge is not worth stopping the agent for
        return
    if highwater is not None:
        lag = max(highwater - message.offset - 1, 0)
        metrics.CONSUMER_LAG.labels(str(message.partition)).set(lag)


ops = FastAPI(
    title="pigeonhole-delivery", docs_url=None, redoc_url=None, openapi_url=None,
    telemetry=NO_OTEL,
)  # fmt: skip


_checks = readiness_checks(holder, lambda: app.consumer)
install_ops_routes(ops, "delivery", lambda: _checks)
serve_asgi(
    app, ops, host=settings.web_host, port=settings.web_port, log_config=None, access_log=False
)
