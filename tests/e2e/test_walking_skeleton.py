"""The thin path, for real: publish, send, schedule on Kafka, deliver, phone home."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.events import SendBatch
from shared.settings import CommonSettings
from shared.topics import SENDS
from tests.conftest import device_token
from tests.seed_payloads import BOTTOM_BANNER, seed_send


async def _end_offsets(consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
    partitions = [TopicPartition(SENDS.name, p) for p in range(SENDS.partitions)]
    consumer.assign(partitions)
    offsets: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    for tp, offset in offsets.items():
        consumer.seek(tp, offset)
    return offsets


async def _batch_for_job(consumer: AIOKafkaConsumer, job_id: int, within: float) -> SendBatch:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        records = await consumer.getmany(timeout_ms=500)
        for messages in records.values():
            for message in messages:
                event = SendBatch.model_validate_json(message.value)
                if event.job_id == job_id:
                    return event
    raise AssertionError(f"no SendBatch for job {job_id} on {SENDS.name} within {within}s")


async def _sync_until(
    device_api: httpx.AsyncClient, headers: dict[str, str], platform: str, within: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        response = await device_api.post("/v1/sync", json={"platform": platform}, headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["messages"] or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.3)


async def test_seed_send_reaches_the_device_personalized(
    api: httpx.AsyncClient,
    device_api: httpx.AsyncClient,
    app: dict[str, str],
    settings: CommonSettings,
) -> None:
    contact = await api.put("/contacts/13507", json={"attributes": {"Dated": "2026-11-21"}})
    assert contact.status_code in (200, 201), contact.text
    published = await api.post("/channels/push/inappcontent", json=BOTTOM_BANNER)
    content_id = published.json()["data"]["id"]

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await _end_offsets(consumer)
        sent = await api.post("/channels/push/sends", json=seed_send(content_id, app["appKey"]))
        assert sent.status_code == 202, sent.text
        job_id = sent.json()["data"]["id"]
        batch = await _batch_for_job(consumer, job_id, within=30)
    finally:
        await consumer.stop()
    assert [r.contact_id for r in batch.recipients] == ["13507"]
    assert batch.recipients[0].personalization["first_name"] == "Michael"

    headers = {
        "X-App-Key": app["appKey"],
        "Authorization": f"Bearer {device_token(app['appSecret'], '13507')}",
    }
    for platform in ("gcm", "apns"):
        body = await _sync_until(device_api, headers, platform)
        [message] = body["messages"]
        assert message["inAppContentId"] == content_id
        assert message["content"]["title"] == "Hello Michael"
        assert message["content"]["text"] == (
            "Hello Michael, this offer expires at  starting now 21-11-2026"
        )
        assert message["template"] == "default"
        assert (message["maxViews"], message["viewsLeft"]) == (3, 3)
        assert message["expiresAt"].startswith("2099-08-25T22:34:51.123")
        assert body["nextSyncAfterSeconds"] == 900

    unchanged = await device_api.post(
        "/v1/sync", json={"platform": "apns", "cursor": body["cursor"]}, headers=headers
    )
    assert unchanged.json() == {
        "changed": False,
        "cursor": body["cursor"],
        "nextSyncAfterSeconds": 900,
    }

    job = (await api.get(f"/channels/push/sendjobs/{job_id}")).json()["data"]
    assert (job["status"], job["recipientsProduced"], job["batchesSent"]) == ("completed", 1, 1)
