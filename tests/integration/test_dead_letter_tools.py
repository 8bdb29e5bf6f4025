"""`pigeonhole dlq show` and `pigeonhole dlq replay` against the real Kafka."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.publisher.ingest import dead_letters
from shared.settings import CommonSettings
from shared.topics import CONTACTS
from tests.conftest import cli


async def test_a_dead_letter_is_shown_and_replayed_to_its_topic(settings: CommonSettings) -> None:
    key = f"dlq-tool-{uuid.uuid4().hex[:8]}".encode()
    value = b'{"contact_id": ["not", "a", "string"]}'
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(CONTACTS.name, value, key=key)
    finally:
        await producer.stop()

    offset = None
    deadline = time.monotonic() + 30
    while offset is None and time.monotonic() < deadline:
        letters = await dead_letters.read(settings.kafka_bootstrap, 50)
        offset = next((o for o, letter in letters if letter.key == key.decode()), None)
        await asyncio.sleep(0.3)
    assert offset is not None, "the malformed contact never reached the DLQ"
    shown = await asyncio.to_thread(cli, "dlq", "show", "--last", "50")
    assert f"#{offset} " in shown and key.decode() in shown and "ContactUpserted" in shown

    watcher = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await watcher.start()
    try:
        partitions = [TopicPartition(CONTACTS.name, p) for p in range(CONTACTS.partitions)]
        watcher.assign(partitions)
        for tp, end in (await watcher.end_offsets(partitions)).items():
            watcher.seek(tp, end)
        replayed = await asyncio.to_thread(cli, "dlq", "replay", str(offset))
        assert f"replayed {offset} -> {CONTACTS.name}" in replayed
        seen = None
        deadline = time.monotonic() + 15
        while seen is None and time.monotonic() < deadline:
            for records in (await watcher.getmany(timeout_ms=300)).values():
                seen = next(((r.key, r.value) for r in records if r.key == key), seen)
    finally:
        await watcher.stop()
    assert seen == (key, value)


def test_replaying_an_unknown_offset_is_refused() -> None:
    import subprocess

    try:
        cli("dlq", "replay", "999999999")
    except subprocess.CalledProcessError as exc:
        assert exc.returncode == 2
        assert "no dead letter at offset" in exc.stderr
    else:
        raise AssertionError("replay of an unknown offset succeeded")
