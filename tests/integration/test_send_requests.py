"""Sends are durable and idempotent, over HTTP and from Kafka pigeonhole.send-requests."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.events import SendRequested
from shared.settings import CommonSettings
from shared.topics import DLQ, SEND_REQUESTS
from tests.kafka_tap import dead_letters, from_the_end
from tests.seed_payloads import BOTTOM_BANNER, seed_send


async def test_http_retry_with_the_same_idempotency_key_makes_one_job(
    api: httpx.AsyncClient, app: dict[str, str], pool: asyncpg.Pool
) -> None:
    content_id = (await api.post("/channels/push/inappcontent", json=BOTTOM_BANNER)).json()["data"][
        "id"
    ]
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    first = await api.post(
        "/channels/push/sends", json=seed_send(content_id, app["appKey"]), headers=headers
    )
    again = await api.post(
        "/channels/push/sends", json=seed_send(content_id, app["appKey"]), headers=headers
    )
    assert first.status_code == again.status_code == 202
    assert first.json()["data"]["id"] == again.json()["data"]["id"]
    assert (
        await pool.fetchval("SELECT count(*) FROM send_jobs WHERE content_id = $1", content_id) == 1
    )


async def test_send_requests_from_kafka_make_one_job_each_and_bad_ones_are_dead_lettered(
    api: httpx.AsyncClient, app: dict[str, str], pool: asyncpg.Pool, settings: CommonSettings
) -> None:
    content_id = (await api.post("/channels/push/inappcontent", json=BOTTOM_BANNER)).json()["data"][
        "id"
    ]
    good = SendRequested(send=seed_send(content_id, app["appKey"]), using_app_frequency=True)
    unknown = SendRequested(send=seed_send("nope0000", app["appKey"]))
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    dlq = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await producer.start()
    await dlq.start()
    try:
        await from_the_end(dlq, DLQ)
        for event in (good, good, unknown):  # the good request twice: a redelivery
            key = event.event_id.encode()
            await producer.send_and_wait(
                SEND_REQUESTS.name, event.model_dump_json().encode(), key=key
            )
        await producer.send_and_wait(SEND_REQUESTS.name, b"not json", key=b"garbage")
        letters = await dead_letters(dlq, {unknown.event_id.encode(), b"garbage"})
    finally:
        await producer.stop()
        await dlq.stop()
    assert "nope0000" in letters[unknown.event_id.encode()].error
    assert "SendRequested" in letters[b"garbage"].error

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = await pool.fetch(
            "SELECT options FROM send_jobs WHERE request_id = $1", f"kafka:{good.event_id}"
        )
        if rows:
            break
        await asyncio.sleep(0.3)
    assert len(rows) == 1
    assert rows[0]["options"]["using_app_frequency"] is True


async def test_a_send_request_without_event_id_is_keyed_by_its_place_on_the_topic(
    api: httpx.AsyncClient, app: dict[str, str], pool: asyncpg.Pool, settings: CommonSettings
) -> None:
    """A record re-read after a restart (before its offset was committed) must not make a
    second job: without an event_id of its own, its topic, partition and offset are its key."""
    content = await api.post("/channels/push/inappcontent", json=BOTTOM_BANNER)
    body = orjson.dumps({"send": seed_send(content.json()["data"]["id"], app["appKey"])})
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(SEND_REQUESTS.name, body, key=b"no-event-id")
    finally:
        await producer.stop()
    key = f"kafka:record:{SEND_REQUESTS.name}:{sent.partition}:{sent.offset}"
    deadline = time.monotonic() + 30
    while not (jobs := await pool.fetch("SELECT id FROM send_jobs WHERE request_id = $1", key)):
        assert time.monotonic() < deadline, f"no send job with request id {key}"
        await asyncio.sleep(0.3)
    assert len(jobs) == 1
