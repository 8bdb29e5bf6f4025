"""Delivery failover, for real: the stack's delivery worker SIGKILLed in the middle of a
30,000-recipient send and restarted loses nothing and duplicates nothing.

The batches are produced onto pigeonhole.sends by the test itself (as the scheduler would:
one bucket per batch, partition = bucket % partitions, key = the bucket) for a send job row
that is already completed, so no scheduler runs it. That keeps the scheduler out of the
picture (another module stops and replaces the stack's scheduler), and the test knows exactly which
batches and recipients went out, so "nothing lost, nothing doubled" is checked against
what was really sent rather than against a second tap on Kafka.

The worker is killed with the pid in .stack/run/delivery.pid while 15-70 % of the send
is filed, and started again with `deploy/local/services.sh up` (which returns once
/readyz answers). A fixture starts it again at the end, whatever the outcome.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import asyncpg
import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka.structs import ConsumerRecord

from shared.events import BatchDelivered, Recipient, SendBatch, SendOptions
from shared.redis_keys import inbox_version
from shared.settings import CommonSettings, DeliverySettings
from shared.topics import DELIVERIES, bucket_of
from tests.kafka_tap import TopicTap, produce_batches
from tests.seed_payloads import BOTTOM_BANNER
from tests.stack_control import (
    alive,
    runs_service,
    service_pid,
    start_stack_services,
)

pytestmark = pytest.mark.e2e

COUNT = 30_000
PER_BATCH = 500
NDJSON = {"content-type": "application/x-ndjson"}


# ---------------------------------------------------------------- the stack's worker


def _delivery_pid() -> int:
    pid = service_pid("delivery")
    assert runs_service(pid, "delivery"), f"pid {pid} in the pid file is not the worker"
    return pid


@pytest.fixture
def delivery_restored() -> Iterator[None]:
    """The stack's delivery worker is running again after the test, whatever happened."""
    try:
        yield
    finally:
        start_stack_services()


# ---------------------------------------------------------------- data


def contact_ids(run: str) -> list[str]:
    return [f"df-{run}-{i}" for i in range(COUNT)]


async def import_contacts(api: httpx.AsyncClient, run: str, ids: list[str]) -> None:
    async def body() -> AsyncIterator[bytes]:
        for start in range(0, len(ids), 5000):
            yield b"".join(
                orjson.dumps({"contactId": c, "attributes": {"run": run, "First_Name": c[-6:]}})
                + b"\n"
                for c in ids[start : start + 5000]
            )

    response = await api.post("/contacts/batch", content=body(), headers=NDJSON, timeout=300)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"imported": len(ids)}


def plan(job_id: int, content_id: str, app_key: str, ids: list[str]) -> list[SendBatch]:
    """What the scheduler would produce: batches of at most PER_BATCH, one bucket each."""
    by_bucket: dict[int, list[str]] = defaultdict(list)
    for contact_id in ids:
        by_bucket[bucket_of(contact_id)].append(contact_id)
    launched = datetime.now(UTC)
    batches: list[SendBatch] = []
    for bucket in sorted(by_bucket):
        members = sorted(by_bucket[bucket])
        for start in range(0, len(members), PER_BATCH):
            batches.append(
                SendBatch(
                    job_id=job_id,
                    batch_seq=len(batches),
                    bucket=bucket,
                    content_id=content_id,
                    content_kind="inapp",
                    app_keys=[app_key],
                    options=SendOptions(),
                    launched_at=launched,
                    recipients=[
                        Recipient(contact_id=c) for c in members[start : start + PER_BATCH]
                    ],
                )
            )
    return batches


async def completed_job(pool: asyncpg.Pool, content_id: str, app_key: str) -> int:
    """A send job row for the test's batches: statistics count only outcomes of real jobs,
    and a job that is already completed is one no scheduler will run."""
    job_id: int = await pool.fetchval(
        """INSERT INTO send_jobs (kind, content_id, app_keys, options, status)
           VALUES ('direct', $1, $2, '{}'::jsonb, 'completed') RETURNING id""",
        content_id,
        [app_key],
    )
    return job_id


async def filed(pool: asyncpg.Pool, job_id: int) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM inbox_entries WHERE send_job_id = $1", job_id
    )
    return count


async def stats(pool: asyncpg.Pool, job_id: int) -> dict[str, int]:
    """The job's outcome counts as the publisher's stats consumer applied them."""
    rows = await pool.fetch(
        "SELECT outcome, count FROM stats_outcomes WHERE send_job_id = $1", job_id
    )
    return {r["outcome"]: r["count"] for r in rows}


async def clean_up(pool: asyncpg.Pool, redis: aioredis.Redis, ids: list[str], job_id: int) -> None:
    await pool.execute("DELETE FROM inbox_entries WHERE send_job_id = $1", job_id)
    await pool.execute("DELETE FROM stats_outcomes WHERE send_job_id = $1", job_id)
    await pool.execute("DELETE FROM send_jobs WHERE id = $1", job_id)
    await pool.execute(
        "DELETE FROM stats_applied_events WHERE event_id LIKE $1", f"delivered-{job_id}-%"
    )
    await pool.execute("DELETE FROM contacts WHERE contact_id = ANY($1)", ids)
    for start in range(0, len(ids), 5000):
        await redis.unlink(*(inbox_version(c) for c in ids[start : start + 5000]))


# ---------------------------------------------------------------- what came out


class OutcomeTap(TopicTap):
    """Every BatchDelivered of one job on pigeonhole.deliveries, from the end offsets
    captured before the send."""

    def __init__(self, settings: CommonSettings, job_id: int) -> None:
        super().__init__(settings.kafka_bootstrap, DELIVERIES, max_records=500)
        self.job_id = job_id
        self.reasons: dict[str, list[str]] = defaultdict(list)
        self.events = 0

    def on_message(self, message: ConsumerRecord[bytes, bytes]) -> None:
        assert message.value is not None
        event = BatchDelivered.model_validate_json(message.value)
        if event.job_id != self.job_id:
            return
        self.events += 1
        for outcome in event.outcomes:
            self.reasons[outcome.contact_id].append(outcome.reason or outcome.outcome)

    async def until_covered(self, expected: int, within: float) -> None:
        deadline = time.monotonic() + within
        while len(self.reasons) < expected:
            assert time.monotonic() < deadline, (
                f"outcomes of {len(self.reasons)} of {expected} recipients in {within}s"
            )
            await asyncio.sleep(0.2)


# ---------------------------------------------------------------- the test


async def test_a_delivery_worker_killed_mid_stream_and_restarted_loses_and_doubles_nothing(
    delivery_restored: None,
    api: httpx.AsyncClient,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    settings: CommonSettings,
    app: dict[str, str],
) -> None:
    run, job_id = uuid.uuid4().hex[:10], 0
    ids = contact_ids(run)
    try:
        await import_contacts(api, run, ids)
        content = await api.post("/channels/push/inappcontent", json=BOTTOM_BANNER)
        assert content.status_code == 201, content.text
        job_id = await completed_job(pool, content.json()["data"]["id"], app["appKey"])
        batches = plan(job_id, content.json()["data"]["id"], app["appKey"], ids)
        victim = _delivery_pid()

        async with OutcomeTap(settings, job_id) as tap:
            await produce_batches(settings.kafka_bootstrap, batches)

            # SIGKILL the worker while it is filing: between 15 % and 70 % of the send
            deadline = time.monotonic() + 60
            while (now := await filed(pool, job_id)) < COUNT * 15 // 100:
                assert time.monotonic() < deadline, f"{now} of {COUNT} filed in 60s"
                await asyncio.sleep(0.05)
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            while alive(victim):
                assert time.monotonic() - killed_at < 10, f"pid {victim} survived SIGKILL"
                await asyncio.sleep(0.05)
            assert now <= COUNT * 70 // 100, f"killed too late: {now} of {COUNT} filed"

            # nothing is filed while no worker runs (a statement in flight may still land)
            await asyncio.sleep(1)
            at_kill = await filed(pool, job_id)
            await asyncio.sleep(2)
            assert await filed(pool, job_id) == at_kill, (
                "entries were filed with the worker dead: another delivery worker is running"
            )
            assert at_kill < COUNT

            restart_at = time.monotonic()
            restart = asyncio.create_task(asyncio.to_thread(start_stack_services))
            deadline = restart_at + 150
            while await filed(pool, job_id) == at_kill:
                assert time.monotonic() < deadline, "no delivery within 150s of the restart"
                assert not restart.done() or restart.result() == 0, "services.sh up failed"
                await asyncio.sleep(0.1)
            resumed_at = time.monotonic()
            assert await restart == 0, "deploy/local/services.sh up failed"
            ready_at = time.monotonic()  # no later than this; the loop above may end first
            assert _delivery_pid() != victim

            deadline = time.monotonic() + 180
            while (now := await filed(pool, job_id)) < COUNT:
                assert time.monotonic() < deadline, f"{now} of {COUNT} filed in 180s"
                await asyncio.sleep(0.5)
            done_at = time.monotonic()
            await tap.until_covered(COUNT, within=30)
            await asyncio.sleep(1)  # the last batches' outcomes, if any were redelivered

        print(
            f"\nkilled at {at_kill} of {COUNT} filed; restart -> services.sh up returned"
            f" {ready_at - restart_at:.1f}s, restart -> first new entry"
            f" {resumed_at - restart_at:.1f}s, kill -> first new entry"
            f" {resumed_at - killed_at:.1f}s, first new entry -> all filed"
            f" {done_at - resumed_at:.1f}s; {tap.events} outcome events for"
            f" {len(batches)} batches"
        )

        # Inbox: everyone exactly once.
        rows = await pool.fetch(
            "SELECT contact_id FROM inbox_entries WHERE send_job_id = $1", job_id
        )
        entries = Counter(r["contact_id"] for r in rows)
        missing, foreign = set(ids) - set(entries), set(entries) - set(ids)
        assert not missing, f"{len(missing)} recipients lost, e.g. {sorted(missing)[:5]}"
        assert not foreign, f"entries for non-recipients, e.g. {sorted(foreign)[:5]}"
        doubled = [c for c, n in entries.items() if n > 1]
        assert not doubled, f"{len(doubled)} recipients filed twice, e.g. {doubled[:5]}"

        # Outcomes: everyone delivered-or-duplicate, nobody delivered twice, nothing else.
        reasons = tap.reasons
        assert set(reasons) == set(ids)
        other = {c: r for c, r in reasons.items() if set(r) - {"delivered", "duplicate"}}
        assert not other, f"{len(other)} with other outcomes, e.g. {list(other.items())[:3]}"
        twice = [c for c, r in reasons.items() if r.count("delivered") > 1]
        assert not twice, f"{len(twice)} reported delivered twice, e.g. {twice[:5]}"
        redelivered = sum(r.count("duplicate") for r in reasons.values())
        # Only the batches in flight at the kill (at most batches_in_flight of them) can
        # have been filed without their outcome going out; their recipients are reported
        # `duplicate` only, by the redelivery.
        only_duplicate = {c for c, r in reasons.items() if "delivered" not in r}
        holding = [b for b in batches if only_duplicate & {r.contact_id for r in b.recipients}]
        in_flight = DeliverySettings().batches_in_flight
        assert len(holding) <= in_flight, (
            f"{len(only_duplicate)} never reported delivered, in {len(holding)} batches"
        )
        assert all({r.contact_id for r in b.recipients} <= only_duplicate for b in holding)
        print(
            f"{redelivered} duplicate outcomes (redelivered after the kill);"
            f" {len(only_duplicate)} recipients filed by the killed worker without an outcome"
        )

        # Statistics (what GET /stats reads) count everyone once, as delivered: outcome
        # events are applied once per event id, and `duplicate` counts as delivered.
        deadline = time.monotonic() + 30
        while sum((await stats(pool, job_id)).values()) < COUNT:
            assert time.monotonic() < deadline, f"stats after 30s: {await stats(pool, job_id)}"
            await asyncio.sleep(0.2)
        await asyncio.sleep(1)
        assert await stats(pool, job_id) == {"delivered": COUNT}

        # Sync can see every message: each recipient's inbox version was bumped.
        for start in range(0, COUNT, 5000):
            chunk = ids[start : start + 5000]
            versions = await redis_client.mget([inbox_version(c) for c in chunk])
            unsignalled = [c for c, v in zip(chunk, versions, strict=True) if v is None]
            assert not unsignalled, f"no inbox version for {unsignalled[:5]}"
    finally:
        await clean_up(pool, redis_client, ids, job_id)
