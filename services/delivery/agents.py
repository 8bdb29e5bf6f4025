"""The delivery agent: raw SendBatch bytes off pigeonhole.sends into the runtime.

Acks are manual (``stream.noack()``): faust acks an event when the next one is taken or
when the stream closes, so an agent that stops mid-event (a crash, a shutdown) would ack
an event nobody handled. Here an event is acked only after ``runtime.handle`` returned,
that is once it is delivered or dead-lettered; an event in flight when the worker stops
is delivered again by whoever owns its partition next (filing is idempotent).

Up to ``batches_in_flight`` events are handled at once, so PostgreSQL, Redis, Kafka and
the worker's own CPU are busy at the same time instead of in turn. Order is kept where it
matters: a contact's batches all travel one partition (its bucket's), so within a
partition a batch of another send job waits for every batch before it, and a contact's
entries are filed in the order its sends were scheduled (the App Inbox lists newest first
by that order). Consecutive batches of one job (the scheduler walks an audience bucket by
bucket, so a big send's batches come in runs on one partition) name different contacts
and go side by side.
faust commits a partition's offset only up to the first event not yet acked, so a crash
re-delivers every unfinished one and skips none. On a rebalance faust waits for the
events in flight to be acked before it gives their partitions away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass, field
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
    runs: dict[int, _Run] = {}  # per partition: the run of one job's events now coming

    async def handle_and_ack(event: Any, before: list[asyncio.Task[None]]) -> None:
        try:
            if before:  # the partition's events of other jobs before it first
                await asyncio.wait(before)
            await _handle(runtime, event.message)
            await events.ack(event)  # delivered or dead-lettered: never before
            _record_lag(event.message)
        finally:
            slots.release()

    try:
        events = stream.noack()
        async for event in events.events():
            await slots.acquire()
            partition, job = event.message.partition, job_of(event.message.value)
            run = runs.get(partition)
            if run is None or job is None or run.job != job:
                run = runs[partition] = _Run(job, before=run.members if run else [])
            task = asyncio.create_task(handle_and_ack(event, run.before))
            run.members.append(task)
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
    finally:
        # stopping: what is unfinished stays unacked and is delivered again by the next owner
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        holder.clients = holder.runtime = None
        await clients.close()


@dataclass
class _Run:
    """Consecutive events of one job on one partition: each waits for ``before`` (the
    previous run's events, which waited for theirs), not for each other."""

    job: int | None
    before: list[asyncio.Task[None]]
    members: list[asyncio.Task[None]] = field(default_factory=list)


_JOB_ID = re.compile(rb'"job_id":(-?[0-9]{1,19})[,}]')


def job_of(value: bytes | None) -> int | None:
    """The job id of a SendBatch as the scheduler writes it (the envelope's fields come
    before its recipients), read without decoding the batch; None when it is not found
    (such an event is ordered after everything before it)."""
    match = _JOB_ID.search(value[:512]) if value else None
    return int(match.group(1)) if match else None


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


async def _forget_lag(_app: Any, *revoked: Any, signal: Any, **_: Any) -> None:
    """A partition taken away (a rebalance: a worker joined or left the group) is another
    worker's to report: a stale gauge here would count its lag twice in the sum."""
    for tp in set().union(*revoked):
        if tp.topic == SENDS.name:
            with contextlib.suppress(KeyError):  # none handled here since the last rebalance
                metrics.CONSUMER_LAG.remove(str(tp.partition))


# mode types a handler with mypy_extensions' VarArg/NamedArg, which mypy does not match here
app.on_partitions_revoked.connect(_forget_lag)  # type: ignore[arg-type]


ops = FastAPI(
    title="pigeonhole-delivery", docs_url=None, redoc_url=None, openapi_url=None,
    telemetry=NO_OTEL,
)  # fmt: skip


_checks = readiness_checks(holder, lambda: app.consumer)
install_ops_routes(ops, "delivery", lambda: _checks)
serve_asgi(
    app, ops, host=settings.web_host, port=settings.web_port, log_config=None, access_log=False
)
