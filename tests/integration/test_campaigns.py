"""Campaigns and send jobs on the running scheduler and delivery worker: audiences,
batching seen on the topic, scheduled starts, pause, resume, cancel, test sends."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.events import SendBatch
from shared.settings import CommonSettings
from shared.topics import SENDS, bucket_of
from tests.seed_payloads import BOTTOM_BANNER


def same_bucket_ids(prefix: str, count: int) -> list[str]:
    """Contact ids that share one bucket, so batches are cut by size alone."""
    ids: list[str] = []
    i, bucket = 0, bucket_of(f"{prefix}-0")
    while len(ids) < count:
        candidate = f"{prefix}-{i}"
        if bucket_of(candidate) == bucket:
            ids.append(candidate)
        i += 1
    return ids


async def make_contacts(api: httpx.AsyncClient, ids: list[str], **attributes: Any) -> None:
    body = b"".join(
        orjson.dumps({"contactId": c, "attributes": {**attributes, "i": n}}) + b"\n"
        for n, c in enumerate(ids)
    )
    response = await api.post(
        "/contacts/batch", content=body, headers={"content-type": "application/x-ndjson"}
    )
    assert response.status_code == 200, response.text


async def list_source(api: httpx.AsyncClient, ids: list[str]) -> int:
    response = await api.post("/contact-sources", json={"name": "t", "contactIds": ids})
    assert response.status_code == 201, response.text
    source_id: int = response.json()["data"]["id"]
    return source_id


async def campaign(api: httpx.AsyncClient, app_key: str, content_id: str, **fields: Any) -> int:
    body = {
        "name": "test campaign",
        "content": {"inAppMessage": {"inAppContentId": content_id}},
        "appKeys": [app_key],
        **fields,
    }
    response = await api.post("/campaigns", json=body)
    assert response.status_code == 201, response.text
    campaign_id: int = response.json()["data"]["id"]
    return campaign_id


async def status_of(api: httpx.AsyncClient, campaign_id: int) -> dict[str, Any]:
    data: dict[str, Any] = (await api.get(f"/campaigns/{campaign_id}")).json()["data"]
    return data


async def wait_for(
    api: httpx.AsyncClient, campaign_id: int, status: str, within: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        data = await status_of(api, campaign_id)
        if data["status"] == status:
            return data
        await asyncio.sleep(0.1)
    raise AssertionError(f"campaign {campaign_id} not {status} within {within}s: {data}")


async def filed(pool: asyncpg.Pool, job_id: int, expected: int, within: float = 60) -> list[str]:
    deadline = time.monotonic() + within
    while True:
        rows = await pool.fetch(
            "SELECT contact_id FROM inbox_entries WHERE send_job_id = $1", job_id
        )
        if len(rows) >= expected or time.monotonic() > deadline:
            return sorted(r["contact_id"] for r in rows)
        await asyncio.sleep(0.2)


async def first_batch(api: httpx.AsyncClient, campaign_id: int, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while (await status_of(api, campaign_id))["batchesSent"] < 1:
        assert time.monotonic() < deadline, "no batch sent"
        await asyncio.sleep(0.05)


@pytest.fixture
async def content_id(api: httpx.AsyncClient) -> str:
    cid: str = (await api.post("/channels/push/inappcontent", json=BOTTOM_BANNER)).json()["data"][
        "id"
    ]
    return cid


@pytest.fixture
async def sends_topic(settings: CommonSettings) -> AsyncIterator[AIOKafkaConsumer]:
    """A reader of pigeonhole.sends positioned at its current end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    partitions = [TopicPartition(SENDS.name, p) for p in range(SENDS.partitions)]
    consumer.assign(partitions)
    for tp, offset in (await consumer.end_offsets(partitions)).items():
        consumer.seek(tp, offset)
    yield consumer
    await consumer.stop()


async def batches_of(
    consumer: AIOKafkaConsumer, job_id: int, recipients: int, within: float = 60
) -> list[tuple[int, SendBatch]]:
    """(Kafka timestamp ms, batch) for the job, until ``recipients`` were seen."""
    found: list[tuple[int, SendBatch]] = []
    deadline = time.monotonic() + within
    while sum(len(b.recipients) for _, b in found) < recipients and time.monotonic() < deadline:
        for messages in (await consumer.getmany(timeout_ms=300)).values():
            for message in messages:
                event = SendBatch.model_validate_json(message.value)
                if event.job_id == job_id:
                    found.append((message.timestamp, event))
    return sorted(found, key=lambda item: item[1].batch_seq)


async def test_audience_is_union_of_includes_minus_union_of_excludes(
    api: httpx.AsyncClient, app: dict[str, str], content_id: str, pool: asyncpg.Pool
) -> None:
    run = uuid.uuid4().hex[:8]
    a, b, c = ([f"{run}-{g}-{i}" for i in range(20)] for g in "abc")
    await make_contacts(api, a + b + c, run=run)
    src_a = await list_source(api, a + c[:5])  # overlaps c
    src_b = await list_source(api, b + a[:5])  # overlaps a: each contact once
    src_c = await list_source(api, c + b[:3])  # excluded
    cid = await campaign(
        api, app["appKey"], content_id, include=[src_a, src_b], exclude=[src_c], startNow=True
    )
    expected = sorted(set(a) | set(b[3:]))
    done = await wait_for(api, cid, "completed")
    assert done["recipientsTotal"] == done["recipientsProduced"] == len(expected)
    assert done["recipientsSent"] == done["recipientsProduced"]  # the deprecated alias
    assert await filed(pool, cid, len(expected)) == expected


async def test_batch_size_and_pause_are_seen_on_the_topic(
    api: httpx.AsyncClient, app: dict[str, str], content_id: str, sends_topic: AIOKafkaConsumer
) -> None:
    ids = same_bucket_ids(uuid.uuid4().hex[:8], 10)
    await make_contacts(api, ids)
    source = await list_source(api, ids)
    cid = await campaign(
        api,
        app["appKey"],
        content_id,
        include=[source],
        startNow=True,
        batching={"recipientsPerBatch": 3, "pauseSeconds": 0.4},
    )
    batches = await batches_of(sends_topic, cid, len(ids))
    assert [len(b.recipients) for _, b in batches] == [3, 3, 3, 1]
    assert [b.batch_seq for _, b in batches] == [0, 1, 2, 3]
    assert sorted(r.contact_id for _, b in batches for r in b.recipients) == sorted(ids)
    gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(batches)]
    assert all(gap >= 400 for gap in gaps), gaps  # a lower bound: the pause is honoured
    assert (await wait_for(api, cid, "completed"))["batchesSent"] == 4


async def test_a_scheduled_campaign_starts_on_time_and_not_before(
    api: httpx.AsyncClient, app: dict[str, str], content_id: str, pool: asyncpg.Pool
) -> None:
    ids = [f"{uuid.uuid4().hex[:8]}-{i}" for i in range(3)]
    await make_contacts(api, ids)
    source = await list_source(api, ids)
    start_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    local = start_at.astimezone(timezone_plus_2())  # the time zone is explicit, any will do
    cid = await campaign(
        api, app["appKey"], content_id, include=[source], startAt=local.isoformat()
    )
    assert (await status_of(api, cid))["status"] == "scheduled"
    while datetime.now(UTC) < start_at - timedelta(seconds=0.5):
        assert (await status_of(api, cid))["launchedAt"] is None
        await asyncio.sleep(0.2)
    done = await wait_for(api, cid, "completed", within=30)
    launched = datetime.fromisoformat(done["launchedAt"])
    assert start_at <= launched < start_at + timedelta(seconds=10)
    assert len(await filed(pool, cid, 3)) == 3


def timezone_plus_2() -> Any:
    from datetime import timezone

    return timezone(timedelta(hours=2))


async def test_pause_stops_batches_and_resume_delivers_everyone_once(
    api: httpx.AsyncClient, app: dict[str, str], content_id: str, pool: asyncpg.Pool
) -> None:
    ids = same_bucket_ids(uuid.uuid4().hex[:8], 12)
    await make_contacts(api, ids)
    source = await list_source(api, ids)
    cid = await campaign(
        api,
        app["appKey"],
        content_id,
        include=[source],
        startNow=True,
        batching={"recipientsPerBatch": 2, "pauseSeconds": 0.5},
    )
    await first_batch(api, cid)
    paused = await api.post(f"/campaigns/{cid}/pause")
    assert paused.status_code == 200 and paused.json()["data"]["status"] == "paused"
    await asyncio.sleep(0.3)
    sent_at_pause = (await status_of(api, cid))["batchesSent"]
    await asyncio.sleep(1.5)
    assert (await status_of(api, cid))["batchesSent"] == sent_at_pause < 6
    assert (await api.post(f"/campaigns/{cid}/pause")).status_code == 409
    resumed = await api.post(f"/campaigns/{cid}/resume")
    assert resumed.status_code == 200
    done = await wait_for(api, cid, "completed")
    assert done["recipientsProduced"] == 12
    assert await filed(pool, cid, 12) == sorted(ids)


async def test_cancel_stops_further_batches(
    api: httpx.AsyncClient, app: dict[str, str], content_id: str, pool: asyncpg.Pool
) -> None:
    ids = same_bucket_ids(uuid.uuid4().hex[:8], 10)
    await make_contacts(api, ids)
    source = await list_source(api, ids)
    cid = await campaign(
        api,
        app["appKey"],
        content_id,
        include=[source],
        startNow=True,
        batching={"recipientsPerBatch": 2, "pauseSeconds": 0.5},
    )
    await first_batch(api, cid)
    cancelled = await api.post(f"/campaigns/{cid}/cancel")
    assert cancelled.json()["data"]["status"] == "cancelled"
    await asyncio.sleep(0.3)
    sent = (await status_of(api, cid))["batchesSent"]
    await asyncio.sleep(1.5)
    final = await status_of(api, cid)
    assert final["status"] == "cancelled" and final["batchesSent"] == sent < 5
    assert len(await filed(pool, cid, 10, within=2)) == 2 * sent
    assert (await api.post(f"/campaigns/{cid}/resume")).status_code == 409


async def test_draft_campaign_waits_for_start(
    api: httpx.AsyncClient, app: dict[str, str], content_id: str, pool: asyncpg.Pool
) -> None:
    ids = [f"{uuid.uuid4().hex[:8]}-{i}" for i in range(2)]
    await make_contacts(api, ids)
    cid = await campaign(api, app["appKey"], content_id, include=[await list_source(api, ids)])
    await asyncio.sleep(1.0)
    assert (await status_of(api, cid))["status"] == "draft"
    assert (await api.post(f"/campaigns/{cid}/start")).json()["data"]["status"] == "scheduled"
    await wait_for(api, cid, "completed")
    assert await filed(pool, cid, 2) == sorted(ids)


async def test_send_job_to_a_contact_source_as_in_the_seed(
    api: httpx.AsyncClient, app: dict[str, str], content_id: str, pool: asyncpg.Pool
) -> None:
    ids = [f"{uuid.uuid4().hex[:8]}-{i}" for i in range(4)]
    await make_contacts(api, ids)
    body = {
        "contactSourceId": await list_source(api, ids),
        "campaignName": "In-app only",
        "messageName": "In-app only 2016-06-15",
        "appKeys": [app["appKey"]],
        "content": {
            "inAppMessage": {
                "expirationDate": "2099-08-25T22:34:51.123+00:00",
                "maxViews": 3,
                "inAppContentId": content_id,
            }
        },
    }
    response = await api.post("/channels/push/sendjobs", json=body)
    assert response.status_code == 202, response.text
    job_id = response.json()["data"]["id"]
    assert await filed(pool, job_id, 4) == sorted(ids)
    job = (await api.get(f"/channels/push/sendjobs/{job_id}")).json()["data"]
    assert (job["name"], job["messageName"], job["status"]) == (
        "In-app only",
        "In-app only 2016-06-15",
        "completed",
    )


async def test_test_send_is_marked_as_a_test(
    api: httpx.AsyncClient, app: dict[str, str], content_id: str, pool: asyncpg.Pool
) -> None:
    contact = f"tester-{uuid.uuid4().hex[:8]}"
    await make_contacts(api, [contact])
    response = await api.post(
        f"/channels/push/inappcontent/{content_id}/test",
        json={"contactIds": [contact], "appKeys": [app["appKey"]]},
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["data"]["id"]
    assert await filed(pool, job_id, 1) == [contact]
    assert await pool.fetchval("SELECT is_test FROM inbox_entries WHERE send_job_id = $1", job_id)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"include": [999999999]}, "include"),
        ({"include": [], "startNow": True}, "include"),
        ({"exclude": [999999999]}, "exclude"),
        ({"appKeys": ["nope"]}, "appKeys"),
        ({"startAt": "2030-01-01T10:00:00"}, "startAt"),  # no time zone
        ({"batching": {"recipientsPerBatch": 0}}, "batching.recipientsPerBatch"),
    ],
)
async def test_bad_campaigns_are_refused_and_create_nothing(
    api: httpx.AsyncClient,
    app: dict[str, str],
    content_id: str,
    pool: asyncpg.Pool,
    fields: dict[str, Any],
    field: str,
) -> None:
    ids = [f"{uuid.uuid4().hex[:8]}-0"]
    await make_contacts(api, ids)
    body = {
        "name": "bad",
        "content": {"inAppMessage": {"inAppContentId": content_id}},
        "appKeys": [app["appKey"]],
        "include": [await list_source(api, ids)],
        **fields,
    }
    before = await pool.fetchval("SELECT count(*) FROM send_jobs")
    response = await api.post("/campaigns", json=body)
    assert response.status_code == 400, response.text
    assert field in response.json()["meta"]["fieldErrors"], response.json()
    assert await pool.fetchval("SELECT count(*) FROM send_jobs") == before
