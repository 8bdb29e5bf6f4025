"""Bad input never stops delivery, on the real stack.

(a) The issue's scenario: one contact whose ``Customer_Date`` is ``1e20`` in a send whose
content formats it (``format(Customer_Date, "dd-MM-yyyy")``). Only that contact is
skipped (``personalization_failed``, the formula and the error kept for the operator);
the others reach their devices, and a later send is delivered at once.
(b) Poison records on pigeonhole.sends, one of every malformed kind, each land on
pigeonhole.dlq (or get the right skip outcome), and the good batch behind them is filed;
a recipient PostgreSQL could not store (a NUL in its id or in its values) is skipped
alone, not its batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from shared.events import BatchDelivered, Recipient, SendBatch, SendOptions
from shared.settings import CommonSettings
from shared.topics import DELIVERIES, DLQ, SENDS
from tests.e2e.conftest import Operator
from tests.inbox_copy import delivered_copy
from tests.kafka_tap import TopicTap, dead_letters, from_the_end


class Outcomes(TopicTap):
    """Outcomes on pigeonhole.deliveries by job, from when the test began."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(bootstrap, DELIVERIES)
        self.by_job: dict[int, dict[str, Any]] = {}
        self.arrived = asyncio.Event()

    def on_message(self, message: ConsumerRecord[bytes, bytes]) -> None:
        assert message.value is not None
        event = BatchDelivered.model_validate_json(message.value)
        for outcome in event.outcomes:
            self.by_job.setdefault(event.job_id, {})[outcome.contact_id] = outcome
        self.arrived.set()

    async def of(self, job_id: int, recipients: int, within: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            self.arrived.clear()
            if len(self.by_job.get(job_id, {})) >= recipients:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), deadline - time.monotonic())
        found = self.by_job.get(job_id, {})
        assert len(found) == recipients, f"outcomes of job {job_id} within {within}s: {found}"
        return found


@pytest.fixture
async def outcomes(settings: CommonSettings) -> AsyncIterator[Outcomes]:
    async with Outcomes(settings.kafka_bootstrap) as tap:
        yield tap


async def messages_of(operator: Operator, device_api: httpx.AsyncClient, contact: str) -> Any:
    response = await device_api.post(
        "/v1/sync", json={"platform": "gcm"}, headers=operator.device(contact)
    )
    assert response.status_code == 200, response.text
    return response.json()["messages"]


async def skipped_in_stats(api: httpx.AsyncClient, job_id: int, within: float = 30) -> Any:
    deadline = time.monotonic() + within
    while True:
        response = await api.get("/stats", params={"sendJobId": job_id})
        assert response.status_code == 200, response.text
        skipped = response.json()["data"]["skipped"]
        if skipped.get("personalization_failed") or time.monotonic() > deadline:
            return response.json()["data"]
        await asyncio.sleep(0.3)


async def test_a_hostile_attribute_skips_only_its_contact_and_the_flow_goes_on(
    operator: Operator,
    api: httpx.AsyncClient,
    device_api: httpx.AsyncClient,
    pool: asyncpg.Pool,
    outcomes: Outcomes,
) -> None:
    content = await operator.inapp()  # the seed's: format(Customer_Date, "dd-MM-yyyy")
    ada = await operator.contact("ada", first_name="Ada", Customer_Date="2026-03-05")
    bad = await operator.contact("bad", first_name="Eve", Customer_Date=1e20)
    plain = await operator.contact("plain")
    job = await operator.send({"inAppMessage": {"inAppContentId": content}}, [ada, bad, plain])

    decided = await outcomes.of(job, 3)
    assert {c: o.reason or o.outcome for c, o in decided.items()} == {
        ada: "delivered",
        bad: "personalization_failed",
        plain: "delivered",
    }
    detail = decided[bad].detail
    assert detail.field == "expiration_date" and "9999" in detail.error

    [message] = await messages_of(operator, device_api, ada)
    assert message["content"]["text"].startswith("Hello Ada, this offer expires at 05-03-2026")
    [message] = await messages_of(operator, device_api, plain)
    assert message["content"]["title"] == "Hello Valued Customer"
    assert await messages_of(operator, device_api, bad) == []

    kept = await pool.fetchrow(
        "SELECT field, error FROM delivery_failures WHERE send_job_id = $1 AND contact_id = $2",
        job,
        bad,
    )
    assert kept is not None and (kept["field"], kept["error"]) == (detail.field, detail.error)
    stats = await skipped_in_stats(api, job)
    assert (stats["delivered"], stats["skipped"]["personalization_failed"]) == (2, 1)

    later = await operator.contact("later", first_name="Grace")
    next_job = await operator.send({"inAppMessage": {"inAppContentId": content}}, [later])
    assert (await outcomes.of(next_job, 1, within=15))[later].outcome == "delivered"


def _batch(job_id: int, content_id: str, app_key: str, contact_ids: list[str]) -> SendBatch:
    return SendBatch(
        job_id=job_id,
        batch_seq=0,
        bucket=0,
        content_id=content_id,
        content_kind="inapp",
        app_keys=[app_key],
        options=SendOptions(),
        launched_at=datetime.now(UTC),
        recipients=[Recipient(contact_id=c) for c in contact_ids],
    )


def _poison(good: SendBatch) -> dict[str, bytes]:
    """Every malformed kind of SendBatch, by name."""
    valid = good.model_dump(mode="json")

    def shaped(**changes: Any) -> bytes:
        return json.dumps({**valid, **changes}).encode()

    return {
        "not-json": b"\xff\xfe not json at all \x00",
        "truncated": shaped()[:40],
        "wrong-shape": b'{"job_id": "not a batch"}',
        "a-list": b"[1, 2, 3]",
        "null": b"null",
        "empty": b"",
        "job-id-beyond-bigint": shaped(job_id=2**64),
        "huge-batch-seq": shaped(batch_seq=10**30),
        "no-recipients": shaped(recipients=[]),
        "unknown-kind": shaped(content_kind="sms"),
        "max-views-beyond-int": shaped(options={**valid["options"], "max_views": 2**40}),
        # decodes, but PostgreSQL refuses a NUL in text: three tries, then the DLQ
        "nul-in-content-id": shaped(content_id="nul\u0000id"),
    }


async def test_poison_batches_are_dead_lettered_and_the_good_batch_behind_them_is_filed(
    operator: Operator,
    app: dict[str, str],
    pool: asyncpg.Pool,
    settings: CommonSettings,
    outcomes: Outcomes,
) -> None:
    contact = await operator.contact("after-poison", first_name="Ada")
    other = await operator.contact("odd-values", first_name="Bo")
    content = await operator.inapp()
    job_id = -int(time.time() * 1000)  # a job id no real send job uses
    good = _batch(job_id, content, app["appKey"], [contact])
    unknown = _batch(job_id - 1, "no-such-content", app["appKey"], [contact])
    # one odd recipient among good ones: it alone is skipped, not the batch
    odd = _batch(job_id - 2, content, app["appKey"], [contact, "nul\x00id", other])
    odd = odd.model_copy(
        update={
            "recipients": [
                *odd.recipients[:2],
                Recipient(contact_id=other, personalization={"first_name": "A\x00"}),
            ]
        }
    )
    poison = {f"{name}-{uuid.uuid4().hex[:6]}".encode(): v for name, v in _poison(good).items()}

    dlq = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await dlq.start()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await from_the_end(dlq, DLQ)
        for key, value in poison.items():  # one partition, the good batch last
            await producer.send_and_wait(SENDS.name, value, key=key, partition=0)
        for key, batch in ((b"unknown", unknown), (b"odd", odd)):
            await producer.send_and_wait(
                SENDS.name, batch.model_dump_json().encode(), key=key, partition=0
            )
        await producer.send_and_wait(
            SENDS.name, good.model_dump_json().encode(), key=b"good", partition=0
        )
        letters = await dead_letters(dlq, set(poison), within=60)
    finally:
        await producer.stop()
        await dlq.stop()
    for key, letter in letters.items():
        assert letter.source_topic == SENDS.name and letter.consumer == "delivery"
        assert letter.value == poison[key].decode(errors="replace")
        expected = "CharacterNotInRepertoire" if key.startswith(b"nul-") else "invalid SendBatch"
        assert expected in letter.error, (key, letter.error)

    assert (await outcomes.of(job_id - 1, 1))[contact].reason == "unknown_content"
    odd_outcomes = await outcomes.of(job_id - 2, 3)
    assert {c: o.reason or o.outcome for c, o in odd_outcomes.items()} == {
        contact: "delivered",
        "nul\x00id": "unknown_contact",
        other: "personalization_failed",
    }
    assert (await outcomes.of(job_id, 1))[contact].outcome == "delivered"
    copy = await delivered_copy(pool, job_id, contact)
    title = copy["payload"]["gcm"]["content"]["title"] if copy else None
    assert title == "Hello Ada"
