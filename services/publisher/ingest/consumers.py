"""What upstream systems send the publisher over Kafka.

- ``pigeonhole.contacts``: contact upserts, written set-based per poll, under the same
  rules as ``PUT /contacts/{id}``.
- ``pigeonhole.send-requests``: the body of ``POST /channels/push/sends``; the event id
  is the idempotency key, bound to the body: a redelivered request makes no second send
  job, another body under a used event id is dead-lettered naming the job it belongs to.
- ``pigeonhole.deliveries`` and ``pigeonhole.engagement``: statistics (``stats/repository.py``).

Each poll is handled, then its offsets are committed: at-least-once, and harmless to
replay. No record can stop the ones after it (``record_handling.py``): an outage pauses
consumption; a record that does not decode, that the API would refuse or that the
database refuses goes to ``pigeonhole.dlq`` with the reason after a few tries. A
consumer task never ends on an exception, so ``/readyz``'s ``kafka_consumers`` check
("a task ended") only fails on a bug in this loop itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, wait_exponential_jitter

from services.publisher.contacts import repository
from services.publisher.contacts.models import UpsertContact
from services.publisher.ingest.record_handling import Record, RecordHandler, Refused, reason_of
from services.publisher.sends import idempotency
from services.publisher.sends import use_cases as sends
from services.publisher.sends.models import CreateSend
from services.publisher.stats import repository as stats
from shared.events import BatchDelivered, ContactUpserted, MessageEngaged, SendRequested
from shared.topics import CONTACTS, DELIVERIES, ENGAGEMENT, SEND_REQUESTS

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
S = TypeVar("S", BatchDelivered, MessageEngaged)
T = TypeVar("T")
BIGINT_MAX = 2**63 - 1


def decode(record: Record, model: type[M]) -> M:
    try:
        return model.model_validate_json(record.value or b"")
    except ValidationError as exc:
        raise Refused(f"invalid {model.__name__}: {exc}") from exc


class Ingest:
    def __init__(self, pool: asyncpg.Pool, producer: AIOKafkaProducer) -> None:
        self.pool = pool
        self.contacts_handler = RecordHandler(producer, "publisher-contacts")
        self.sends_handler = RecordHandler(producer, "publisher-sends")
        self.stats_handler = RecordHandler(producer, "publisher-stats")

    async def contacts(self, records: list[Record]) -> None:
        changes = await self._decode_each(self.contacts_handler, records, self._contact_change)
        await self.contacts_handler.all_or_each(
            changes, partial(repository.upsert_contacts, self.pool)
        )

    @staticmethod
    def _contact_change(record: Record) -> repository.ContactChange:
        event = decode(record, ContactUpserted)
        try:  # the same rules as PUT /contacts/{id}
            checked = UpsertContact.model_validate(
                {"attributes": event.attributes or {}, "subscriptions": event.subscriptions or {}}
            )
        except ValidationError as exc:
            raise Refused(f"invalid contact {event.contact_id!r}: {exc}") from exc
        return (event.contact_id, checked.attributes, checked.subscriptions)

    async def send_requests(self, records: list[Record]) -> None:
        for record in records:
            await self.sends_handler.each(record, partial(self._send_request, record))

    async def _send_request(self, record: Record) -> None:
        event = decode(record, SendRequested)
        try:
            command = CreateSend.model_validate(event.send)
        except ValidationError as exc:
            raise Refused(f"invalid send in SendRequested: {exc}") from exc
        # Without an event_id of its own, the record's place on the topic is its identity:
        # re-reading the same record (a restart before the commit) makes no second job.
        key = (
            event.event_id
            if "event_id" in event.model_fields_set
            else f"record:{record.topic}:{record.partition}:{record.offset}"
        )
        job_id = await sends.create_send(
            self.pool, command, using_app_frequency=event.using_app_frequency,
            request=idempotency.kafka_request(key, command, event.using_app_frequency),
        )  # fmt: skip
        log.info("send request accepted", extra={"job_id": job_id, "event_id": event.event_id})

    async def deliveries(self, records: list[Record]) -> None:
        events = await self._stats_events(records, BatchDelivered)
        await self.stats_handler.all_or_each(events, partial(stats.apply_deliveries, self.pool))

    async def engagement(self, records: list[Record]) -> None:
        events = await self._stats_events(records, MessageEngaged)
        await self.stats_handler.all_or_each(events, partial(stats.apply_engagement, self.pool))

    async def _stats_events(self, records: list[Record], model: type[S]) -> list[tuple[Record, S]]:
        """Decoded events of known send jobs; the others are dead-lettered."""

        def checked(record: Record) -> S:
            event = decode(record, model)
            if not 0 < event.job_id <= BIGINT_MAX:
                raise Refused(f"job_id {event.job_id} is out of range")
            return event

        decoded = await self._decode_each(self.stats_handler, records, checked)
        ids = sorted({e.job_id for _, e in decoded})
        known = await self.stats_handler.attempt(partial(stats.known_jobs, self.pool, ids))
        kept = []
        for record, event in decoded:
            if event.job_id in known:
                kept.append((record, event))
            else:
                await self.stats_handler.dead_letter(record, f"unknown send job {event.job_id}")
        return kept

    @staticmethod
    async def _decode_each(
        handler: RecordHandler, records: list[Record], parse: Callable[[Record], T]
    ) -> list[tuple[Record, T]]:
        decoded = []
        for record in records:
            try:
                decoded.append((record, parse(record)))
            except Exception as exc:  # a parser must never stop the poll
                await handler.dead_letter(record, reason_of(exc))
        return decoded


async def consume(
    consumer: AIOKafkaConsumer, handle: Callable[[list[Record]], Awaitable[None]]
) -> None:
    """Poll, handle, commit: forever (until cancelled). An exception never ends the task:
    the poll is read again from its first offsets, after a pause."""
    async for attempt in AsyncRetrying(wait=wait_exponential_jitter(multiplier=0.5, max=15)):
        with attempt:  # Kafka may still be starting: the API serves meanwhile
            await consumer.start()
    errors = _RateLimitedLog(interval=10.0)
    try:
        while True:
            records: list[Record] = []
            try:
                polled = await consumer.getmany(timeout_ms=1000)
                records = [record for batch in polled.values() for record in batch]
                if records:
                    await handle(records)
                    await consumer.commit()
            except Exception:
                errors.exception(f"consumer of {sorted(consumer.subscription())} failed")
                _rewind(consumer, records)
                await asyncio.sleep(1)
    finally:
        await consumer.stop()


def _rewind(consumer: AIOKafkaConsumer, records: list[Record]) -> None:
    """Read the poll again: it was not (entirely) handled. Harmless if it was."""
    first: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        first[tp] = min(first.get(tp, record.offset), record.offset)
    for tp, offset in first.items():
        try:
            consumer.seek(tp, offset)
        except Exception:  # no longer assigned: its new owner reads from the commit
            log.info("partition moved on during a failed poll", extra={"partition": str(tp)})


class _RateLimitedLog:
    """One traceback per interval, with the count of the ones left out."""

    def __init__(self, interval: float) -> None:
        self.interval, self.last, self.dropped = interval, 0.0, 0

    def exception(self, message: str) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            self.dropped += 1
            return
        log.exception(message, extra={"suppressed": self.dropped})
        self.last, self.dropped = now, 0


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
