"""Contacts: single upsert, the streamed batch import, and upstream changes from Kafka."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.events import ContactUpserted
from shared.settings import CommonSettings
from shared.topics import CONTACTS, DLQ
from tests.kafka_tap import dead_letters, from_the_end

NDJSON = {"content-type": "application/x-ndjson"}


async def test_put_merges_attributes_and_subscriptions(api: httpx.AsyncClient) -> None:
    contact = f"merge-{uuid.uuid4().hex[:8]}"
    first = await api.put(
        f"/contacts/{contact}",
        json={"attributes": {"a": 1, "b": 2}, "subscriptions": {"offers": True}},
    )
    assert first.status_code == 201
    second = await api.put(
        f"/contacts/{contact}", json={"attributes": {"b": 3}, "subscriptions": {"news": False}}
    )
    assert second.status_code == 200
    data = second.json()["data"]
    assert data["attributes"] == {"a": 1, "b": 3}
    assert data["subscriptions"] == {"offers": True, "news": False}


async def test_batch_import_of_100k_contacts_in_one_streamed_call(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    run = uuid.uuid4().hex[:8]
    count = 100_000

    async def body() -> AsyncIterator[bytes]:
        for start in range(0, count, 5000):
            yield b"".join(
                orjson.dumps(
                    {
                        "contactId": f"imp-{run}-{i}",
                        "attributes": {"run": run, "n": i},
                        "subscriptions": {"offers": i % 2 == 0},
                    }
                )
                + b"\n"
                for i in range(start, start + 5000)
            )

    response = await api.post("/contacts/batch", content=body(), headers=NDJSON, timeout=300)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"imported": count}
    stored = await pool.fetchval("SELECT count(*) FROM contacts WHERE attributes->>'run' = $1", run)
    assert stored == count
    row = await pool.fetchrow(
        "SELECT attributes, subscriptions FROM contacts WHERE contact_id = $1", f"imp-{run}-77"
    )
    assert row is not None
    assert row["attributes"] == {"run": run, "n": 77} and row["subscriptions"] == {"offers": False}
    await pool.execute("DELETE FROM contacts WHERE attributes->>'run' = $1", run)


async def test_a_bad_line_imports_nothing_and_is_named(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    run = uuid.uuid4().hex[:8]
    lines = [
        orjson.dumps({"contactId": f"bad-{run}-{i}", "attributes": {"run": run}}) for i in range(5)
    ]
    lines.insert(3, b'{"contactId": true}')
    response = await api.post("/contacts/batch", content=b"\n".join(lines), headers=NDJSON)
    assert response.status_code == 400
    assert any(key.startswith("line 4") for key in response.json()["meta"]["fieldErrors"])
    assert (
        await pool.fetchval("SELECT count(*) FROM contacts WHERE attributes->>'run' = $1", run) == 0
    )
    wrong_type = await api.post("/contacts/batch", json=[{"contactId": 1}])
    assert wrong_type.status_code == 415


async def test_contacts_from_kafka_appear_and_a_malformed_event_is_dead_lettered(
    pool: asyncpg.Pool, settings: CommonSettings
) -> None:
    run = uuid.uuid4().hex[:8]
    contact = f"kafka-{run}"
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    dlq = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await producer.start()
    await dlq.start()
    try:
        await from_the_end(dlq, DLQ)
        bad_key = f"bad-{run}".encode()
        await producer.send_and_wait(CONTACTS.name, b'{"contact_id": 5}', key=bad_key)
        for event in (
            ContactUpserted(contact_id=contact, attributes={"city": "Oslo", "tier": 1}),
            ContactUpserted(
                contact_id=contact, attributes={"tier": 2}, subscriptions={"news": True}
            ),
        ):
            await producer.send_and_wait(
                CONTACTS.name, event.model_dump_json().encode(), key=contact.encode()
            )
        letter = (await dead_letters(dlq, {bad_key}))[bad_key]
    finally:
        await producer.stop()
        await dlq.stop()
    assert letter.source_topic == CONTACTS.name and "ContactUpserted" in letter.error

    deadline = time.monotonic() + 30
    row = None
    while time.monotonic() < deadline:
        row = await pool.fetchrow(
            "SELECT attributes, subscriptions FROM contacts WHERE contact_id = $1", contact
        )
        if row and row["attributes"].get("tier") == 2:
            break
        await asyncio.sleep(0.3)
    assert row is not None
    assert row["attributes"] == {"city": "Oslo", "tier": 2}
    assert row["subscriptions"] == {"news": True}


async def test_merges_cannot_grow_a_contact_past_its_attribute_bound(
    api: httpx.AsyncClient,
) -> None:
    """Each call is within its own 64 KiB, but merged documents are bounded too (128 KiB as
    stored): the call that would cross it is refused, naming the field, and changes nothing."""
    contact = f"big-{uuid.uuid4().hex[:8]}"
    chunk = "x" * 60_000
    for key in ("a", "b"):
        response = await api.put(f"/contacts/{contact}", json={"attributes": {key: chunk}})
        assert response.status_code in (200, 201), response.text
    third = await api.put(f"/contacts/{contact}", json={"attributes": {"c": chunk}})
    assert third.status_code == 413, third.text
    assert "128 KiB" in third.json()["meta"]["fieldErrors"]["attributes"][0]
    line = orjson.dumps({"contactId": contact, "attributes": {"d": chunk}})
    imported = await api.post(
        "/contacts/batch", content=line, headers={"content-type": "application/x-ndjson"}
    )
    assert imported.status_code == 413, imported.text
    assert "lines 1..1.attributes" in imported.json()["meta"]["fieldErrors"]
    stored = (await api.get(f"/contacts/{contact}")).json()["data"]["attributes"]
    assert sorted(stored) == ["a", "b"]
