"""The publisher's webhook machinery: two Kafka consumers (own groups) filling the outbox,
and the dispatcher sending it (docs/webhooks.md)."""

from __future__ import annotations

import asyncio
import itertools

import asyncpg
from aiokafka import AIOKafkaConsumer

from services.publisher.ingest.consumers import consume
from services.publisher.ingest.record_handling import Record
from services.publisher.webhooks import metrics, outbox
from services.publisher.webhooks.dispatcher import Dispatcher
from shared.events import BatchDelivered, MessageEngaged
from shared.settings import PublisherSettings
from shared.topics import DELIVERIES, ENGAGEMENT

GROUP = "pigeonhole-publisher-webhooks"


class Webhooks:
    def __init__(self, pool: asyncpg.Pool, settings: PublisherSettings) -> None:
        self.pool, self.settings = pool, settings
        self.dispatcher = Dispatcher(pool, settings)

    async def deliveries(self, records: list[Record]) -> None:
        events = outbox.decoded(records, BatchDelivered)
        rows = itertools.chain.from_iterable(map(outbox.delivery_events, events))
        metrics.ENQUEUED.inc(await outbox.enqueue(self.pool, rows))

    async def engagement(self, records: list[Record]) -> None:
        events = outbox.decoded(records, MessageEngaged)
        rows = itertools.chain.from_iterable(map(outbox.engagement_events, events))
        metrics.ENQUEUED.inc(await outbox.enqueue(self.pool, rows))

    def tasks(self) -> dict[str, asyncio.Task[None]]:
        """The consumers' and the dispatcher's tasks, by a name for /readyz."""

        def consumer(topic: str) -> AIOKafkaConsumer:
            return AIOKafkaConsumer(
                topic, bootstrap_servers=self.settings.kafka_bootstrap,
                group_id=f"{GROUP}-{topic.rsplit('.', 1)[-1]}", enable_auto_commit=False,
                auto_offset_reset="earliest", max_poll_records=500,
            )  # fmt: skip

        return {
            f"webhooks:{DELIVERIES.name}": asyncio.create_task(
                consume(consumer(DELIVERIES.name), self.deliveries)
            ),
            f"webhooks:{ENGAGEMENT.name}": asyncio.create_task(
                consume(consumer(ENGAGEMENT.name), self.engagement)
            ),
            "webhooks:dispatcher": asyncio.create_task(self.dispatcher.run()),
        }
