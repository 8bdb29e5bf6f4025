"""Upstream contact changes from Kafka ``pigeonhole.contacts`` into PostgreSQL.

Each poll's events are upserted set-based, then the offsets are committed: at-least-once,
and harmless to replay because an upsert merges the same keys to the same values. Events
that do not decode go to the dead-letter topic; a database outage pauses consumption
(retried until PostgreSQL is back) instead of skipping events.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from services.publisher import repository
from shared.events import ContactUpserted
from shared.kafka import send_dead_letter
from shared.topics import CONTACTS

log = logging.getLogger(__name__)
GROUP = "pigeonhole-publisher-contacts"
TRANSIENT = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


def contacts_consumer(bootstrap: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        CONTACTS.name,
        bootstrap_servers=bootstrap,
        group_id=GROUP,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=2000,
    )


class ContactIngest:
    def __init__(
        self, pool: asyncpg.Pool, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer
    ) -> None:
        self.pool, self.consumer, self.producer = pool, consumer, producer
        self.ingested = 0

    async def run(self) -> None:
        while True:
            polled = await self.consumer.getmany(timeout_ms=1000)
            records = [record for batch in polled.values() for record in batch]
            if not records:
                continue
            changes = await self._decode(records)
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(TRANSIENT),
                wait=wait_exponential_jitter(initial=0.2, max=10),
            ):
                with attempt:
                    await repository.upsert_contacts(self.pool, changes)
            await self.consumer.commit()
            self.ingested += len(changes)

    async def _decode(
        self, records: list[ConsumerRecord[bytes, bytes]]
    ) -> list[repository.ContactChange]:
        changes: list[repository.ContactChange] = []
        for record in records:
            try:
                event = ContactUpserted.model_validate_json(record.value or b"")
            except ValidationError as exc:
                await send_dead_letter(
                    self.producer,
                    source_topic=CONTACTS.name,
                    consumer="publisher-contacts",
                    error=f"invalid ContactUpserted: {exc}",
                    key=record.key,
                    value=record.value,
                    partition=record.partition,
                    offset=record.offset,
                )
                continue
            changes.append((event.contact_id, event.attributes or {}, event.subscriptions or {}))
        return changes


async def run_ingest(pool: asyncpg.Pool, bootstrap: str, producer: AIOKafkaProducer) -> None:
    """Connect (retrying while Kafka is away, so the API serves meanwhile), then consume."""
    consumer = contacts_consumer(bootstrap)
    async for attempt in AsyncRetrying(wait=wait_exponential_jitter(initial=0.5, max=15)):
        with attempt:
            await consumer.start()
    try:
        await ContactIngest(pool, consumer, producer).run()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("contact ingest stopped")
        raise
    finally:
        await consumer.stop()
