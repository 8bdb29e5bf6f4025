"""A malformed SendBatch goes to pigeonhole.dlq and the worker keeps delivering."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.events import Recipient, SendBatch, SendOptions
from shared.settings import CommonSettings
from shared.topics import DLQ, SENDS
from tests.inbox_copy import delivered_copy
from tests.kafka_tap import dead_letters, from_the_end
from tests.seed_payloads import BOTTOM_BANNER


async def test_malformed_batch_is_dead_lettered_and_the_next_is_delivered(
    api: httpx.AsyncClient, app: dict[str, str], pool: asyncpg.Pool, settings: CommonSettings
) -> None:
    contact_id = f"dlq-{uuid.uuid4().hex[:8]}"
    await api.put(f"/contacts/{contact_id}", json={"attributes": {"first_name": "Ada"}})
    content_id = (await api.post("/channels/push/inappcontent", json=BOTTOM_BANNER)).json()["data"][
        "id"
    ]
    job_id = -int(time.time() * 1000)  # a job id no real send job uses
    good = SendBatch(
        job_id=job_id,
        batch_seq=0,
        bucket=0,
        content_id=content_id,
        content_kind="inapp",
        app_keys=[app["appKey"]],
        options=SendOptions(),
        launched_at=datetime.now(UTC),
        recipients=[Recipient(contact_id=contact_id)],
    )
    bad_key = f"bad-{uuid.uuid4().hex[:8]}".encode()

    dlq = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await dlq.start()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await from_the_end(dlq, DLQ)
        # same partition, bad event first: the good one must still get through after it
        await producer.send_and_wait(
            SENDS.name, b'{"job_id": "not a batch"', key=bad_key, partition=0
        )
        await producer.send_and_wait(
            SENDS.name, good.model_dump_json().encode(), key=b"0", partition=0
        )
        letter = (await dead_letters(dlq, {bad_key}))[bad_key]
    finally:
        await producer.stop()
        await dlq.stop()
    assert letter.source_topic == SENDS.name
    assert letter.value == '{"job_id": "not a batch"'
    assert "SendBatch" in letter.error

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        copy = await delivered_copy(pool, job_id, contact_id)
        title = copy["payload"]["gcm"]["content"]["title"] if copy else None
        if title:
            break
        await asyncio.sleep(0.3)
    assert title == "Hello Ada"
