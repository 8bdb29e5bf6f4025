"""Each delivery decision on the real stack, seen where operators see it: the inbox and
the outcomes on pigeonhole.deliveries."""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.delivery.caps import cap_key
from shared.events import BatchDelivered, Recipient, SendBatch, SendOptions
from shared.settings import CommonSettings
from shared.topics import DELIVERIES, bucket_of
from tests.kafka_tap import produce_batches
from tests.seed_payloads import BOTTOM_BANNER

FUTURE = "2099-01-01T00:00:00+00:00"


class Outcomes:
    """Reads pigeonhole.deliveries from where it stood when the test began, keeping every
    job's decisions so that waiting for one job never drops another's."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.seen: dict[int, list[tuple[str, str]]] = {}

    async def of(
        self, job_id: int, recipients: int = 1, within: float = 30
    ) -> list[tuple[str, str]]:
        """(contact, outcome or skip reason) in arrival order, once ``recipients`` decisions
        are in (a send's recipients span batches, one per bucket)."""
        deadline = time.monotonic() + within
        while len(self.seen.get(job_id, [])) < recipients and time.monotonic() < deadline:
            for messages in (await self.consumer.getmany(timeout_ms=300)).values():
                for message in messages:
                    event = BatchDelivered.model_validate_json(message.value)
                    self.seen.setdefault(event.job_id, []).extend(
                        (o.contact_id, o.reason or o.outcome) for o in event.outcomes
                    )
        found = self.seen.get(job_id, [])
        assert len(found) >= recipients, f"outcomes of job {job_id}: {found}"
        return found


@pytest.fixture
async def outcomes(settings: CommonSettings) -> AsyncIterator[Outcomes]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    partitions = [TopicPartition(DELIVERIES.name, p) for p in range(DELIVERIES.partitions)]
    consumer.assign(partitions)
    for tp, offset in (await consumer.end_offsets(partitions)).items():
        consumer.seek(tp, offset)
    yield Outcomes(consumer)
    await consumer.stop()


async def publish(api: httpx.AsyncClient, **extra: Any) -> str:
    body = {**copy.deepcopy(BOTTOM_BANNER), **extra}
    response = await api.post("/channels/push/inappcontent", json=body)
    assert response.status_code == 201, response.text
    content_id: str = response.json()["data"]["id"]
    return content_id


async def send(
    api: httpx.AsyncClient,
    content_id: str,
    app_key: str,
    contacts: list[str],
    *,
    expiration: str = FUTURE,
    frequency: bool = False,
) -> int:
    path = "/channels/push/sends" + ("/usingAppFrequency" if frequency else "")
    body = {
        "channelQualifiers": [app_key],
        "content": {"inAppMessage": {"inAppContentId": content_id, "expirationDate": expiration}},
        "contacts": [{"contactId": c} for c in contacts],
    }
    response = await api.post(path, json=body)
    assert response.status_code == 202, response.text
    job_id: int = response.json()["data"]["id"]
    return job_id


async def new_app(api: httpx.AsyncClient, **limits: int) -> str:
    response = await api.post("/apps", json={"name": "caps", "frequencyLimits": limits})
    app_key: str = response.json()["data"]["appKey"]
    return app_key


async def new_contacts(api: httpx.AsyncClient, *names: str, **subscriptions: bool) -> list[str]:
    ids = [f"{name}-{uuid.uuid4().hex[:8]}" for name in names]
    for contact_id in ids:
        await api.put(f"/contacts/{contact_id}", json={"subscriptions": subscriptions})
    return ids


async def test_unknown_contact_unsubscribed_expired_and_delivered(
    api: httpx.AsyncClient, app: dict[str, str], outcomes: Outcomes
) -> None:
    content_id = await publish(api, category="offers")
    [ok] = await new_contacts(api, "ok")
    [out] = await new_contacts(api, "out", offers=False)
    ghost = f"ghost-{uuid.uuid4().hex[:8]}"
    job = await send(api, content_id, app["appKey"], [ok, out, ghost])
    assert dict(await outcomes.of(job, recipients=3)) == {
        ok: "delivered",
        out: "unsubscribed",
        ghost: "unknown_contact",
    }
    expired = await send(api, content_id, app["appKey"], [ok], expiration="2020-01-01T00:00:00Z")
    assert await outcomes.of(expired) == [(ok, "expired")]


async def test_app_limits_cap_only_sends_using_app_frequency(
    api: httpx.AsyncClient, outcomes: Outcomes
) -> None:
    app_key = await new_app(api, perDay=1)
    content_id = await publish(api)
    [who] = await new_contacts(api, "freq")
    first = await send(api, content_id, app_key, [who], frequency=True)
    assert await outcomes.of(first) == [(who, "delivered")]
    second = await send(api, content_id, app_key, [who], frequency=True)
    assert await outcomes.of(second) == [(who, "frequency_capped")]
    plain = await send(api, content_id, app_key, [who])
    assert await outcomes.of(plain) == [(who, "delivered")]


async def test_tag_caps_cap_every_send_of_tagged_content(
    api: httpx.AsyncClient, app: dict[str, str], outcomes: Outcomes
) -> None:
    tag = f"promo-{uuid.uuid4().hex[:8]}"
    response = await api.put(f"/tag-caps/{tag}", json={"maxCount": 1, "periodSeconds": 3600})
    assert response.status_code == 200, response.text
    tagged, untagged = await publish(api, tags=[tag]), await publish(api)
    [who] = await new_contacts(api, "tagged")
    assert await outcomes.of(await send(api, tagged, app["appKey"], [who])) == [(who, "delivered")]
    assert await outcomes.of(await send(api, tagged, app["appKey"], [who])) == [
        (who, "frequency_capped")
    ]
    assert await outcomes.of(await send(api, untagged, app["appKey"], [who])) == [
        (who, "delivered")
    ]


async def test_a_batch_consumed_twice_leaves_one_entry_and_one_cap_count(
    api: httpx.AsyncClient,
    outcomes: Outcomes,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    settings: CommonSettings,
) -> None:
    app_key = await new_app(api, perDay=5)
    content_id = await publish(api)
    [who] = await new_contacts(api, "twice")
    job_id = -int(time.time() * 1000)
    batch = SendBatch(
        job_id=job_id,
        batch_seq=0,
        bucket=bucket_of(who),
        content_id=content_id,
        content_kind="inapp",
        app_keys=[app_key],
        launched_at=datetime.now(UTC),
        options=SendOptions(using_app_frequency=True),
        recipients=[Recipient(contact_id=who)],
    )
    # twice: what a redelivery after a crash looks like to the worker
    await produce_batches(settings.kafka_bootstrap, [batch, batch])
    # both deliveries carry one event id; read until the second decision is out
    decisions = await outcomes.of(job_id, recipients=2)
    assert decisions == [(who, "delivered"), (who, "duplicate")]
    entries = await pool.fetchval(
        "SELECT count(*) FROM inbox_entries WHERE send_job_id = $1", job_id
    )
    assert entries == 1
    assert await redis_client.zcard(cap_key(who, f"app:{app_key}")) == 1


async def test_twenty_concurrent_sends_racing_on_one_contact_with_a_limit_of_3_deliver_3(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    app_key = await new_app(api, perHour=3)
    content_id = await publish(api)
    [who] = await new_contacts(api, "race")
    jobs = await asyncio.gather(
        *(send(api, content_id, app_key, [who], frequency=True) for _ in range(20))
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = await pool.fetchval(
            "SELECT count(*) FROM send_jobs WHERE id = ANY($1) AND status = 'completed'", jobs
        )
        if done == 20:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(2)  # the last batches' decisions
    delivered = await pool.fetchval(
        "SELECT count(*) FROM inbox_entries WHERE contact_id = $1 AND $2 = ANY(app_keys)",
        who, app_key,
    )  # fmt: skip
    assert delivered == 3


async def test_while_redis_is_unreachable_nothing_is_delivered_past_caps_then_all_is(
    api: httpx.AsyncClient,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    outcomes: Outcomes,
) -> None:
    """Fail-closed: a stalled Redis holds the batch (retried), never skips or over-delivers."""
    app_key = await new_app(api, perDay=1)
    content_id = await publish(api)
    [who] = await new_contacts(api, "outage")
    await redis_client.client_pause(9000, all=True)
    paused_at = time.monotonic()
    first = await send(api, content_id, app_key, [who], frequency=True)
    second = await send(api, content_id, app_key, [who], frequency=True)
    await asyncio.sleep(4)
    assert time.monotonic() - paused_at < 8.5, "the check ran after the pause ended"
    filed = await pool.fetchval(
        "SELECT count(*) FROM inbox_entries WHERE send_job_id = ANY($1)", [first, second]
    )
    assert filed == 0
    [(_, one)] = await outcomes.of(first, within=40)
    [(_, other)] = await outcomes.of(second, within=40)
    assert sorted([one, other]) == ["delivered", "frequency_capped"]
    entries = await pool.fetch("SELECT send_job_id FROM inbox_entries WHERE contact_id = $1", who)
    assert len(entries) == 1
    assert await redis_client.zcard(cap_key(who, f"app:{app_key}")) == 1
