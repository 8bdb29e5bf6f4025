"""No record stops a publisher consumer: poison of every kind lands in pigeonhole.dlq and
the next good record on the same partition is handled (real Kafka and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.events import (
    BatchDelivered,
    ContactUpserted,
    MessageEngaged,
    RecipientOutcome,
    SendRequested,
)
from shared.settings import CommonSettings
from shared.topics import CONTACTS, DELIVERIES, DLQ, ENGAGEMENT, SEND_REQUESTS, Topic
from tests.kafka_tap import dead_letters, from_the_end
from tests.seed_payloads import BOTTOM_BANNER, seed_send

BEYOND_64_BITS = 2**70
DEEP = "[" * 5000 + "]" * 5000


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def _common_poison() -> dict[str, bytes]:
    """Malformed the same way on every topic."""
    return {
        "not-json": b"\xff\xfe not json at all",
        "wrong-shape": b'[{"hello": "world"}]',
        "empty": b"",
        "deep": ('{"a": ' + DEEP + "}").encode(),
    }


@pytest.fixture
async def kafka(settings: CommonSettings) -> AsyncIterator[tuple[AIOKafkaProducer, Any]]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    dlq = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await producer.start()
    await dlq.start()
    await from_the_end(dlq, DLQ)
    try:
        yield producer, dlq
    finally:
        await producer.stop()
        await dlq.stop()


async def _poison_then_good(
    kafka: tuple[AIOKafkaProducer, AIOKafkaConsumer],
    topic: Topic,
    poison: dict[str, bytes],
    good: bytes,
) -> dict[str, str]:
    """Produce every poison record, then the good one, all on partition 0; return the
    dead letters' errors by poison kind."""
    producer, dlq = kafka
    run = uuid.uuid4().hex[:8]
    keys = {f"{kind}-{run}".encode(): kind for kind in poison}
    for key, kind in keys.items():
        await producer.send_and_wait(topic.name, poison[kind], key=key, partition=0)
    await producer.send_and_wait(topic.name, good, key=f"good-{run}".encode(), partition=0)
    letters = await dead_letters(dlq, set(keys), within=60)
    return {keys[key]: letter.error for key, letter in letters.items()}


async def _eventually(check: Callable[[], Awaitable[bool]], within: float = 30) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.3)
    return False


async def test_contacts_consumer_dead_letters_poison_and_upserts_the_next_contact(
    kafka: tuple[AIOKafkaProducer, AIOKafkaConsumer], pool: asyncpg.Pool
) -> None:
    run = f"poison-{uuid.uuid4().hex[:8]}"
    good_id = f"{run}-ok"
    poison = {
        **_common_poison(),
        "nul-in-string": _json({"contact_id": f"{run}-nul", "attributes": {"a": "x\u0000y"}}),
        "nul-in-id": _json({"contact_id": f"{run}\u0000nul"}),
        "int-beyond-64-bits": _json(
            {"contact_id": f"{run}-big", "attributes": {"n": BEYOND_64_BITS}}
        ),
        "huge-document": _json({"contact_id": f"{run}-huge", "attributes": {"a": "x" * 300_000}}),
        "id-too-long": _json({"contact_id": "c" * 500}),
        "bad-subscription": _json({"contact_id": f"{run}-sub", "subscriptions": {"n": [1]}}),
    }
    good = ContactUpserted(contact_id=good_id, attributes={"First_Name": "Ada"})
    errors = await _poison_then_good(kafka, CONTACTS, poison, good.model_dump_json().encode())
    assert set(errors) == set(poison)

    async def upserted() -> bool:
        row = await pool.fetchrow("SELECT attributes FROM contacts WHERE contact_id = $1", good_id)
        return row is not None and row["attributes"] == {"First_Name": "Ada"}

    assert await _eventually(upserted)
    stored = await pool.fetchval(
        "SELECT count(*) FROM contacts WHERE contact_id LIKE $1", f"{run}%"
    )
    assert stored == 1  # the good one only


async def test_send_request_consumer_dead_letters_poison_and_accepts_the_next_send(
    kafka: tuple[AIOKafkaProducer, AIOKafkaConsumer],
    pool: asyncpg.Pool,
    api: httpx.AsyncClient,
    app: dict[str, str],
) -> None:
    content = await api.post("/channels/push/inappcontent", json=BOTTOM_BANNER)
    content_id = content.json()["data"]["id"]
    send = seed_send(content_id, app["appKey"])

    def request(**changes: Any) -> bytes:
        return _json({"event_id": uuid.uuid4().hex, "send": {**send, **changes}})

    used = SendRequested(send=send)
    poison = {
        **_common_poison(),
        "nul-in-string": request(contacts=[{"contactId": "a\u0000b"}]),
        "int-beyond-64-bits": request(personalizationDefaults={"n": BEYOND_64_BITS}),
        "unknown-content": request(content={"inAppMessage": {"inAppContentId": "nope0000"}}),
        "unknown-app": request(channelQualifiers=["no-such-app"]),
        "huge-personalization": request(personalizationDefaults={"a": "x" * 300_000}),
        "event-id-reused-for-another-send": _json(
            {"event_id": used.event_id, "send": {**send, "personalizationDefaults": {"x": 1}}}
        ),
    }
    producer, _ = kafka
    await producer.send_and_wait(SEND_REQUESTS.name, used.model_dump_json().encode(), partition=0)
    good = SendRequested(send=send)
    errors = await _poison_then_good(kafka, SEND_REQUESTS, poison, good.model_dump_json().encode())
    assert set(errors) == set(poison)
    assert "nope0000" in errors["unknown-content"]
    first_job = await pool.fetchval(
        "SELECT id FROM send_jobs WHERE request_id = $1", f"kafka:{used.event_id}"
    )
    assert f"send job {first_job}" in errors["event-id-reused-for-another-send"]

    async def accepted() -> bool:
        return bool(
            await pool.fetchval(
                "SELECT count(*) FROM send_jobs WHERE request_id = $1", f"kafka:{good.event_id}"
            )
        )

    assert await _eventually(accepted)
    assert (
        await pool.fetchval("SELECT count(*) FROM send_jobs WHERE content_id = $1", content_id) == 2
    )


@pytest.fixture
async def job_id(api: httpx.AsyncClient, app: dict[str, str]) -> int:
    content = await api.post("/channels/push/inappcontent", json=BOTTOM_BANNER)
    sent = await api.post(
        "/channels/push/sends", json=seed_send(content.json()["data"]["id"], app["appKey"])
    )
    assert sent.status_code == 202, sent.text
    return int(sent.json()["data"]["id"])


async def test_deliveries_consumer_dead_letters_poison_and_counts_the_next_batch(
    kafka: tuple[AIOKafkaProducer, AIOKafkaConsumer], pool: asyncpg.Pool, job_id: int
) -> None:
    def delivered(**changes: Any) -> bytes:
        event = {
            "event_id": uuid.uuid4().hex, "job_id": job_id, "batch_seq": 7,
            "content_id": "MqU8NG7y",
            "outcomes": [{"contact_id": "13507", "outcome": "delivered"}],
        }  # fmt: skip
        return _json({**event, **changes})

    poison = {
        **_common_poison(),
        "nul-in-string": delivered(content_id="a\u0000b"),
        "job-id-beyond-64-bits": delivered(job_id=BEYOND_64_BITS),
        "job-id-beyond-bigint": delivered(job_id=2**63),
        "unknown-job": delivered(job_id=2**62),
        "unknown-outcome": delivered(outcomes=[{"contact_id": "1", "outcome": "lost"}]),
    }
    good = BatchDelivered(
        job_id=job_id, batch_seq=9, content_id="MqU8NG7y",
        outcomes=[RecipientOutcome(contact_id="13507", outcome="delivered")],
    )  # fmt: skip
    errors = await _poison_then_good(kafka, DELIVERIES, poison, good.model_dump_json().encode())
    assert set(errors) == set(poison)
    assert "unknown send job" in errors["unknown-job"]

    async def counted() -> bool:
        return bool(
            await pool.fetchval(
                "SELECT count(*) FROM stats_applied_events WHERE event_id = $1", good.event_id
            )
        )

    assert await _eventually(counted)


async def test_engagement_consumer_dead_letters_poison_and_records_the_next_view(
    kafka: tuple[AIOKafkaProducer, AIOKafkaConsumer], pool: asyncpg.Pool, job_id: int
) -> None:
    def engaged(**changes: Any) -> bytes:
        event = {
            "event_id": uuid.uuid4().hex, "contact_id": "13507", "message_id": uuid.uuid4().hex,
            "job_id": job_id, "content_id": "MqU8NG7y", "type": "view",
            "at": datetime.now(UTC).isoformat(),
        }  # fmt: skip
        return _json({**event, **changes})

    poison = {
        **_common_poison(),
        "nul-in-string": engaged(message_id="m\u0000x"),
        "job-id-beyond-64-bits": engaged(job_id=BEYOND_64_BITS),
        "unknown-job": engaged(job_id=2**62),
        "unknown-type": engaged(type="stare"),
    }
    good = MessageEngaged(
        contact_id="13507", message_id=uuid.uuid4().hex, job_id=job_id, content_id="MqU8NG7y",
        type="view", at=datetime.now(UTC),
    )  # fmt: skip
    errors = await _poison_then_good(kafka, ENGAGEMENT, poison, good.model_dump_json().encode())
    assert set(errors) == set(poison)

    async def recorded() -> bool:
        return bool(
            await pool.fetchval(
                "SELECT count(*) FROM stats_engagement WHERE message_id = $1", good.message_id
            )
        )

    assert await _eventually(recorded)
