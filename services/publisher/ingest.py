"""What upstream systems send the publisher over Kafka.

- ``pigeonhole.contacts``: contact upserts, written set-based per poll.
- ``pigeonhole.send-requests``: the body of ``POST /channels/push/sends``; the event id
  is the idempotency key, so a redelivered request makes no second send job.

Each poll is handled, then its offsets are committed: at-least-once, and harmless to
replay. An event that does not decode, or that the API would refuse (unknown content,
unknown app…), goes to the dead-letter topic with the reason. A database outage pauses
consumption (retried until PostgreSQL is back) instead of skipping events.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeAlias, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from services.publisher import handlers, repository, stats
from services.publisher.errors import ApiError
from services.publisher.models import CreateSend
from shared.events import BatchDelivered, ContactUpserted, MessageEngaged, SendRequested
from shared.kafka import send_dead_letter
from shared.topics import CONTACTS, DELIVERIES, ENGAGEMENT, SEND_REQUESTS

log = logging.getLogger(__name__)
TRANSIENT = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)
Record: TypeAlias = ConsumerRecord[bytes, bytes]
M = TypeVar("M", bound=BaseModel)


def _retrying() -> AsyncRetrying:
    return AsyncRetrying(
        retry=retry_if_exception_type(TRANSIENT), wait=wait_exponential_jitter(initial=0.2, max=10)
    )


class Ingest:
    def __init__(self, pool: asyncpg.Pool, producer: AIOKafkaProducer) -> None:
        self.pool, self.producer = pool, producer

    async def dead_letter(self, record: Record, consumer: str, error: str) -> None:
        await send_dead_letter(
            self.producer, source_topic=record.topic, consumer=consumer, error=error,
            key=record.key, value=record.value, partition=record.partition, offset=record.offset,
        )  # fmt: skip

    async def contacts(self, records: list[Record]) -> None:
        events = await self._decode(records, ContactUpserted, "publisher-contacts")
        changes: list[repository.ContactChange] = [
            (e.contact_id, e.attributes or {}, e.subscriptions or {}) for e in events
        ]
        async for attempt in _retrying():
            with attempt:
                await repository.upsert_contacts(self.pool, changes)

    async def send_requests(self, records: list[Record]) -> None:
        for record in records:
            try:
                event = SendRequested.model_validate_json(record.value or b"")
                command = CreateSend.model_validate(event.send)
            except ValidationError as exc:
                await self.dead_letter(record, "publisher-sends", f"invalid SendRequested: {exc}")
                continue
            try:
                async for attempt in _retrying():
                    with attempt:
                        job_id = await handlers.create_send(
                            self.pool, command, using_app_frequency=event.using_app_frequency,
                            request_id=f"kafka:{event.event_id}",
                        )  # fmt: skip
            except ApiError as exc:
                reasons = [*exc.general, *(f"{k}: {v[0]}" for k, v in exc.fields.items())]
                await self.dead_letter(record, "publisher-sends", "; ".join(reasons))
                continue
            log.info("send request accepted", extra={"job_id": job_id, "event_id": event.event_id})

    async def deliveries(self, records: list[Record]) -> None:
        decoded = await self._decode(records, BatchDelivered, "publisher-stats")
        async for attempt in _retrying():
            with attempt:
                await stats.apply_deliveries(self.pool, decoded)

    async def engagement(self, records: list[Record]) -> None:
        decoded = await self._decode(records, MessageEngaged, "publisher-stats")
        async for attempt in _retrying():
            with attempt:
                await stats.apply_engagement(self.pool, decoded)

    async def _decode(self, records: list[Record], model: type[M], consumer: str) -> list[M]:
        decoded = []
        for record in records:
            try:
                decoded.append(model.model_validate_json(record.value or b""))
            except ValidationError as exc:
                await self.dead_letter(record, consumer, f"invalid {model.__name__}: {exc}")
        return decoded


async def consume(
    consumer: AIOKafkaConsumer, handle: Callable[[list[Record]], Awaitable[None]]
) -> None:
    """Poll, handle, commit: forever (until cancelled)."""
    async for attempt in AsyncRetrying(wait=wait_exponential_jitter(initial=0.5, max=15)):
        with attempt:  # Kafka may still be starting: the API serves meanwhile
            await consumer.start()
    try:
        while True:
            polled = await consumer.getmany(timeout_ms=1000)
            records = [record for batch in polled.values() for record in batch]
            if records:
                await handle(records)
                await consumer.commit()
    finally:
        await consumer.stop()


def consumers(bootstrap: str) -> dict[str, AIOKafkaConsumer]:
    def make(topic: str, group: str) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
            auto_offset_reset="earliest", max_poll_records=2000,
        )  # fmt: skip

    return {
        CONTACTS.name: make(CONTACTS.name, "pigeonhole-publisher-contacts"),
        SEND_REQUESTS.name: make(SEND_REQUESTS.name, "pigeonhole-publisher-send-requests"),
        DELIVERIES.name: make(DELIVERIES.name, "pigeonhole-publisher-stats-deliveries"),
        ENGAGEMENT.name: make(ENGAGEMENT.name, "pigeonhole-publisher-stats-engagement"),
    }
