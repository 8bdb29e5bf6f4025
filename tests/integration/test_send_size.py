"""Sizes that agree: a send larger than one Kafka message is cut into batches that fit; a
job whose batch could never fit fails with the error instead of starving every later job.
(The publisher refuses such a send at accept time: tests/unit/test_send_limits.py.)"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import httpx

from shared.events import SendOptions
from shared.topics import MAX_MESSAGE_BYTES, bucket_of
from tests.seed_payloads import BOTTOM_BANNER, seed_send


def same_bucket_ids(prefix: str, count: int) -> list[str]:
    ids: list[str] = []
    i, bucket = 0, bucket_of(f"{prefix}-0")
    while len(ids) < count:
        if bucket_of(candidate := f"{prefix}-{i}") == bucket:
            ids.append(candidate)
        i += 1
    return ids


async def insert_direct_job(
    pool: asyncpg.Pool, content_id: str, app_key: str, recipients: dict[str, dict[str, Any]]
) -> int:
    """A send job written straight to the database, as no API request could make it."""
    async with pool.acquire() as conn, conn.transaction():
        job_id: int = await conn.fetchval(
            """INSERT INTO send_jobs (kind, content_id, app_keys, options, recipients_total)
               VALUES ('direct', $1, $2, $3, $4) RETURNING id""",
            content_id, [app_key], SendOptions().model_dump(mode="json"), len(recipients),
        )  # fmt: skip
        await conn.execute(
            """INSERT INTO send_job_recipients (send_job_id, bucket, contact_id, personalization)
               SELECT $1, bucket, contact_id, p
                 FROM unnest($2::smallint[], $3::text[], $4::jsonb[])
                      AS t(bucket, contact_id, p)""",
            job_id, [bucket_of(c) for c in recipients], list(recipients), list(recipients.values()),
        )  # fmt: skip
        await conn.execute("NOTIFY send_jobs")
    return job_id


async def job_when(
    api: httpx.AsyncClient, job_id: int, statuses: set[str], within: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        job: dict[str, Any] = (await api.get(f"/channels/push/sendjobs/{job_id}")).json()["data"]
        if job["status"] in statuses or time.monotonic() > deadline:
            return job
        await asyncio.sleep(0.3)


async def content(api: httpx.AsyncClient) -> str:
    answer = await api.post("/channels/push/inappcontent", json=BOTTOM_BANNER)
    content_id: str = answer.json()["data"]["id"]
    return content_id


async def test_a_send_larger_than_a_kafka_message_goes_out_in_batches_that_fit(
    api: httpx.AsyncClient, app: dict[str, str], pool: asyncpg.Pool
) -> None:
    """700 recipients of one bucket with 2 KB each (1.4 MB): one batch by count, two by size."""
    ids = same_bucket_ids(f"big-{uuid.uuid4().hex[:6]}", 700)
    recipients = {c: {"note": "n" * 2000} for c in ids}
    job_id = await insert_direct_job(pool, await content(api), app["appKey"], recipients)
    job = await job_when(api, job_id, {"completed", "failed"})
    assert job["status"] == "completed", job
    assert job["recipientsProduced"] == 700
    assert job["batchesSent"] >= 2
    assert MAX_MESSAGE_BYTES < 700 * 2000  # more than one Kafka message in all


async def test_a_batch_that_can_never_fit_fails_its_job_and_later_jobs_go_on(
    api: httpx.AsyncClient, app: dict[str, str], pool: asyncpg.Pool
) -> None:
    content_id = await content(api)
    huge = {"too-big": {"blob": "x" * (MAX_MESSAGE_BYTES + 10)}}
    stuck = await insert_direct_job(pool, content_id, app["appKey"], huge)
    later = await api.post("/channels/push/sends", json=seed_send(content_id, app["appKey"]))
    assert later.status_code == 202

    failed = await job_when(api, stuck, {"failed", "completed"})
    assert failed["status"] == "failed"
    assert "bytes" in failed["error"]
    done = await job_when(api, later.json()["data"]["id"], {"completed"})
    assert done["status"] == "completed"
