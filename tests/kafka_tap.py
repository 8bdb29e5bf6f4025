"""Reading a topic from where it stood when a test began, in the background."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from shared.events import DeadLetter, SendBatch
from shared.topics import DLQ, SENDS, Topic, partition_of


class TopicTap:
    """Every message appended to ``topic`` after entering, handed to ``on_message``."""

    def __init__(self, bootstrap: str, topic: Topic, max_records: int = 1000) -> None:
        self.topic, self.max_records = topic, max_records
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self._task: asyncio.Task[None] | None = None

    def on_message(self, message: ConsumerRecord[bytes, bytes]) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.consumer.start()
        partitions = [TopicPartition(self.topic.name, p) for p in range(self.topic.partitions)]
        self.consumer.assign(partitions)
        for tp, offset in (await self.consumer.end_offsets(partitions)).items():
            self.consumer.seek(tp, offset)
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.consumer.stop()

    async def _read(self) -> None:
        while True:
            records = await self.consumer.getmany(timeout_ms=200, max_records=self.max_records)
            for messages in records.values():
                for message in messages:
                    self.on_message(message)


async def from_the_end(consumer: AIOKafkaConsumer, topic: Topic) -> None:
    """Position a started consumer on every partition of ``topic`` at its current end."""
    partitions = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
    consumer.assign(partitions)
    for tp, offset in (await consumer.end_offsets(partitions)).items():
        consumer.seek(tp, offset)


async def dead_letters(
    consumer: AIOKafkaConsumer, keys: set[bytes], within: float = 30
) -> dict[bytes, DeadLetter]:
    """The dead letters with these original keys, read until all arrived (or fail)."""
    found: dict[bytes, DeadLetter] = {}
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and set(found) != keys:
        for messages in (await consumer.getmany(timeout_ms=500)).values():
            for message in messages:
                if message.key in keys and message.value is not None:
                    found[message.key] = DeadLetter.model_validate_json(message.value)
    assert set(found) == keys, f"not on {DLQ.name} within {within}s: {keys - set(found)}"
    return found


async def produce_batches(bootstrap: str, batches: list[SendBatch]) -> None:
    """Put SendBatch events on pigeonhole.sends as the scheduler does (keyed by bucket, on
    the bucket's partition), in order, and wait until Kafka acknowledged them all."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(
                SENDS.name,
                batch.model_dump_json().encode(),
                key=str(batch.bucket).encode(),
                partition=partition_of(batch.bucket, SENDS.partitions),
            )
            for batch in batches
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
