"""Operator tools for pigeonhole.dlq: look at what consumers could not handle, and send
an event back to its topic once its cause is fixed (a replayed event is handled like any
other: consumers are idempotent, so replaying one that did get through is harmless)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import ValidationError

from shared.events import DeadLetter
from shared.kafka import durable_producer
from shared.topics import ALL_TOPICS, DLQ

REPLAYABLE = {t.name for t in ALL_TOPICS} - {DLQ.name}


async def read(bootstrap: str, last: int) -> list[tuple[int, DeadLetter]]:
    """The ``last`` newest dead letters, oldest first, with their DLQ offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(DLQ.name, p) for p in range(DLQ.partitions)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        wanted = 0
        for tp in partitions:
            begin = max(starts[tp], ends[tp] - last)
            consumer.seek(tp, begin)
            wanted += ends[tp] - begin
        letters: list[tuple[int, DeadLetter]] = []
        seen = 0
        while seen < wanted:
            batch = await consumer.getmany(timeout_ms=2000)
            if not batch:
                break
            for records in batch.values():
                for record in records:
                    seen += 1
                    try:
                        letters.append(
                            (record.offset, DeadLetter.model_validate_json(record.value or b""))
                        )
                    except ValidationError:
                        continue
        return sorted(letters, key=lambda item: item[0])[-last:]
    finally:
        await consumer.stop()


async def replay(bootstrap: str, offsets: list[int]) -> list[str]:
    """Send the original events at these DLQ offsets back to their source topics."""
    wanted = set(offsets)
    letters = [(o, letter) for o, letter in await read(bootstrap, 10_000) if o in wanted]
    missing = wanted - {o for o, _ in letters}
    if missing:
        raise ValueError(f"no dead letter at offset(s) {sorted(missing)}")
    producer: AIOKafkaProducer = durable_producer(bootstrap, "pigeonhole-cli")
    await producer.start()
    replayed = []
    try:
        for offset, letter in letters:
            if letter.source_topic not in REPLAYABLE:
                raise ValueError(f"offset {offset}: cannot replay to {letter.source_topic!r}")
            key = letter.key.encode() if letter.key is not None else None
            await producer.send_and_wait(letter.source_topic, letter.value.encode(), key=key)
            replayed.append(f"{offset} -> {letter.source_topic}")
    finally:
        await producer.stop()
    return replayed
