"""Scheduler failover, for real: a scheduler SIGKILLed in the middle of a 50,000-recipient
campaign and replaced leaves every recipient filed exactly once, and two schedulers
running side by side never run one job at once.

A scheduler produces a page of batches at a time (services/scheduler/runner.py), so the
page in flight at a kill is what may go out twice.

The stack's own scheduler is stopped for this module so that the tests decide which
schedulers run; they start their own as extra processes (spare metrics ports, a 3-second
lease so a killed holder's job is reclaimed quickly) and the stack's is started again at
the end, whatever the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka.structs import ConsumerRecord

from services.scheduler.runner import PAGE_BATCHES
from shared.events import SendBatch
from shared.redis_keys import inbox_version_pattern
from shared.settings import CommonSettings
from shared.topics import SENDS
from tests.conftest import REPO
from tests.kafka_tap import TopicTap
from tests.seed_payloads import BOTTOM_BANNER
from tests.stack_control import start_stack_services, stop_stack_service

pytestmark = pytest.mark.e2e

LEASE_SECONDS = 3
NDJSON = {"content-type": "application/x-ndjson"}


# ---------------------------------------------------------------- the stack's scheduler


def stop_stack_scheduler() -> None:
    stop_stack_service("scheduler")


@pytest.fixture(scope="module")
def own_schedulers_only() -> Iterator[Callable[[], None]]:
    """No scheduler but the ones the tests start; the stack's comes back afterwards,
    whatever the outcome. Yields the stopper, for tests to call again right before
    they start their own (in case something restarted the stack meanwhile)."""
    try:
        stop_stack_scheduler()
        yield stop_stack_scheduler
    finally:
        start_stack_services()


# ---------------------------------------------------------------- our schedulers


class Scheduler:
    """``python -m services.scheduler`` as an extra process on a spare metrics port."""

    def __init__(self, port: int, log_dir: Path) -> None:
        self.port = port
        self.log = log_dir / f"scheduler-{port}.log"
        env = {
            **os.environ,
            "PIGEONHOLE_METRICS_PORT": str(port),
            "PIGEONHOLE_LEASE_SECONDS": str(LEASE_SECONDS),
        }
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.scheduler"],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        # the lease owner the scheduler writes: f"{hostname}:{pid}" (services/scheduler/main.py)
        self.owner = f"{socket.gethostname()}:{self.process.pid}"

    async def ready(self, within: float = 60) -> None:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=1) as client:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, f"exited early; see {self.log}"
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://127.0.0.1:{self.port}/readyz")).is_success:
                        return
                await asyncio.sleep(0.2)
        raise AssertionError(f"scheduler on {self.port} not ready within {within}s")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def schedulers() -> Iterator[list[Scheduler]]:
    """Schedulers started by a test (append to the list); all are stopped at the end."""
    started: list[Scheduler] = []
    yield started
    for scheduler in started:
        scheduler.stop()


async def start_scheduler(started: list[Scheduler], port: int, log_dir: Path) -> Scheduler:
    scheduler = Scheduler(port, log_dir)
    started.append(scheduler)
    await scheduler.ready()
    return scheduler


# ---------------------------------------------------------------- data


async def import_contacts(api: httpx.AsyncClient, run: str, count: int) -> None:
    """``count`` contacts ``fo-<run>-<i>`` with attribute ``run``, in one streamed call."""

    async def body() -> AsyncIterator[bytes]:
        for start in range(0, count, 5000):
            yield b"".join(
                orjson.dumps({"contactId": f"fo-{run}-{i}", "attributes": {"run": run}}) + b"\n"
                for i in range(start, min(start + 5000, count))
            )

    response = await api.post("/contacts/batch", content=body(), headers=NDJSON, timeout=300)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"imported": count}


async def audience(api: httpx.AsyncClient, run: str, count: int) -> tuple[int, str]:
    """(contact source id, in-app content id) for a run of ``count`` new contacts."""
    await import_contacts(api, run, count)
    source = await api.post(
        "/contact-sources",
        json={"name": f"failover-{run}", "query": {"attribute": "run", "op": "eq", "value": run}},
    )
    assert source.status_code == 201, source.text
    content = await api.post("/channels/push/inappcontent", json=BOTTOM_BANNER)
    assert content.status_code == 201, content.text
    return source.json()["data"]["id"], content.json()["data"]["id"]


async def launch(
    api: httpx.AsyncClient,
    source_id: int,
    content_id: str,
    app_key: str,
    per_batch: int,
    pause: float,
) -> int:
    response = await api.post(
        "/campaigns",
        json={
            "name": f"failover-{uuid.uuid4().hex[:6]}",
            "content": {"inAppMessage": {"inAppContentId": content_id}},
            "include": [source_id],
            "appKeys": [app_key],
            "batching": {"recipientsPerBatch": per_batch, "pauseSeconds": pause},
            "startNow": True,
        },
    )
    assert response.status_code == 201, response.text
    job_id: int = response.json()["data"]["id"]
    return job_id


async def campaign(api: httpx.AsyncClient, job_id: int) -> dict[str, Any]:
    response = await api.get(f"/campaigns/{job_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def wait_completed(api: httpx.AsyncClient, job_id: int, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        data = await campaign(api, job_id)
        if data["status"] == "completed":
            return data
        assert time.monotonic() < deadline, f"campaign {job_id} not completed in {within}s: {data}"
        await asyncio.sleep(0.2)


async def wait_filed(pool: asyncpg.Pool, job_id: int, expected: int, within: float) -> None:
    """Until the delivery worker has filed ``expected`` entries for the job."""
    deadline = time.monotonic() + within
    while True:
        filed = await pool.fetchval(
            "SELECT count(*) FROM inbox_entries WHERE send_job_id = $1", job_id
        )
        if filed >= expected:
            return
        assert time.monotonic() < deadline, f"{filed} of {expected} filed in {within}s"
        await asyncio.sleep(0.5)


async def assert_each_contact_filed_once(
    pool: asyncpg.Pool, job_id: int, run: str, expected: int
) -> None:
    counts = await pool.fetchrow(
        """SELECT count(*), count(DISTINCT contact_id) FROM inbox_entries
            WHERE send_job_id = $1""",
        job_id,
    )
    assert counts is not None and tuple(counts) == (expected, expected)
    filed = Counter(
        r["contact_id"]
        for r in await pool.fetch(
            "SELECT contact_id FROM inbox_entries WHERE send_job_id = $1", job_id
        )
    )
    members = {
        r["contact_id"]
        for r in await pool.fetch(
            "SELECT contact_id FROM contacts WHERE attributes->>'run' = $1", run
        )
    }
    assert len(members) == expected
    missing, foreign = members - set(filed), set(filed) - members
    assert not missing and not foreign, (
        f"missing {sorted(missing)[:5]}, foreign {sorted(foreign)[:5]}"
    )
    assert max(filed.values()) == 1


async def job_row(pool: asyncpg.Pool, job_id: int) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM send_jobs WHERE id = $1", job_id)
    assert row is not None
    return row


async def clean_up(pool: asyncpg.Pool, redis: aioredis.Redis, run: str, job_id: int | None) -> None:
    """The run's contacts, inbox entries and inbox versions: tens of thousands each."""
    if job_id is not None:
        await pool.execute("DELETE FROM inbox_entries WHERE send_job_id = $1", job_id)
    await pool.execute("DELETE FROM contacts WHERE attributes->>'run' = $1", run)
    keys = [
        key async for key in redis.scan_iter(match=inbox_version_pattern(f"fo-{run}-*"), count=5000)
    ]
    for start in range(0, len(keys), 5000):
        await redis.unlink(*keys[start : start + 5000])


# ---------------------------------------------------------------- what went on Kafka


class SendsTap(TopicTap):
    """Every SendBatch produced on pigeonhole.sends from now on, per job."""

    def __init__(self, settings: CommonSettings) -> None:
        super().__init__(settings.kafka_bootstrap, SENDS, max_records=2000)
        self.batches: dict[int, list[SendBatch]] = defaultdict(list)

    def on_message(self, message: ConsumerRecord[bytes, bytes]) -> None:
        assert message.value is not None
        event = SendBatch.model_validate_json(message.value)
        self.batches[event.job_id].append(event)

    def recipients(self, job_id: int) -> Counter[str]:
        return Counter(r.contact_id for b in self.batches[job_id] for r in b.recipients)

    async def until_covered(self, job_id: int, expected: int, within: float) -> None:
        """Until the job's batches name ``expected`` distinct recipients."""
        deadline = time.monotonic() + within
        while len(self.recipients(job_id)) < expected:
            assert time.monotonic() < deadline, (
                f"{len(self.recipients(job_id))} of {expected} recipients seen on Kafka"
            )
            await asyncio.sleep(0.2)


# ---------------------------------------------------------------- (a) kill -9 and resume


async def test_a_scheduler_killed_mid_job_and_replaced_files_every_recipient_once(
    own_schedulers_only: Callable[[], None],
    schedulers: list[Scheduler],
    tmp_path: Path,
    api: httpx.AsyncClient,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    settings: CommonSettings,
    app: dict[str, str],
) -> None:
    count, run, job_id = 50_000, uuid.uuid4().hex[:12], None
    try:
        source_id, content_id = await audience(api, run, count)
        own_schedulers_only()
        first = await start_scheduler(schedulers, 19111, tmp_path)
        async with SendsTap(settings) as tap:
            # small batches: 1,000 of them, so that the job runs long enough to be
            # caught in the middle (a page of large ones goes out in milliseconds)
            job_id = await launch(api, source_id, content_id, app["appKey"], 50, 0)

            # kill -9 the holder as soon as a fifth of the audience has gone out
            deadline = time.monotonic() + 60
            while (held := await job_row(pool, job_id))["recipients_sent"] < count // 5:
                assert held["status"] in ("scheduled", "running"), dict(held)
                assert time.monotonic() < deadline, f"no progress in 60s: {dict(held)}"
                await asyncio.sleep(0.005)
            first.kill()
            at_kill = await job_row(pool, job_id)
            assert held["lease_owner"] == first.owner, (
                f"job held by {held['lease_owner']}, not by the test's scheduler {first.owner}:"
                " another scheduler is running (was the stack restarted during the test?)"
            )
            assert at_kill["status"] == "running"
            sent = at_kill["recipients_sent"]
            assert count // 5 <= sent <= count * 4 // 5, f"killed at {sent} of {count}"

            second = await start_scheduler(schedulers, 19112, tmp_path)
            done = await wait_completed(api, job_id, within=120)
            await tap.until_covered(job_id, count, within=30)
            await wait_filed(pool, job_id, count, within=180)

        assert done["recipientsTotal"] == count
        assert done["recipientsProduced"] == count
        await assert_each_contact_filed_once(pool, job_id, run, count)
        assert second.process.poll() is None

        # On Kafka: everyone once, except at most the one page in flight at the kill,
        # which the new scheduler sends again under the same batch_seqs.
        recipients = tap.recipients(job_id)
        assert len(recipients) == count
        seqs = Counter(b.batch_seq for b in tap.batches[job_id])
        assert sorted(seqs) == list(range(len(seqs))), "batch_seq has gaps"
        resent = sorted(seq for seq, n in seqs.items() if n > 1)
        assert len(resent) <= PAGE_BATCHES, f"more than one page re-sent: {resent}"
        if resent:  # one page: consecutive batches
            assert resent == list(range(resent[0], resent[-1] + 1)), resent
        assert all(n == 2 for n in seqs.values() if n > 1), seqs
        again = {contact for contact, n in recipients.items() if n > 1}
        in_flight = {r.contact_id for b in tap.batches[job_id] if b.batch_seq in resent
                     for r in b.recipients}  # fmt: skip
        assert again <= in_flight, "a recipient outside the re-sent page went out twice"
        assert all(n <= 2 for n in recipients.values())
    finally:
        await clean_up(pool, redis_client, run, job_id)


# ---------------------------------------------------------------- (b) never two at once


async def test_two_live_schedulers_never_run_one_job_at_once(
    own_schedulers_only: Callable[[], None],
    schedulers: list[Scheduler],
    tmp_path: Path,
    api: httpx.AsyncClient,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    settings: CommonSettings,
    app: dict[str, str],
) -> None:
    count, run, job_id = 20_000, uuid.uuid4().hex[:12], None
    try:
        source_id, content_id = await audience(api, run, count)
        own_schedulers_only()
        both = [
            await start_scheduler(schedulers, 19113, tmp_path),
            await start_scheduler(schedulers, 19114, tmp_path),
        ]
        async with SendsTap(settings) as tap:
            job_id = await launch(api, source_id, content_id, app["appKey"], 200, 0.05)
            # both schedulers are woken by the same NOTIFY and race for the job; watch
            # who holds it for the whole run
            owners: list[str] = []
            deadline = time.monotonic() + 120
            while True:
                row = await job_row(pool, job_id)
                if row["lease_owner"] is not None:
                    owners.append(row["lease_owner"])
                if row["status"] == "completed":
                    break
                assert time.monotonic() < deadline, f"not completed in 120s: {row['status']}"
                await asyncio.sleep(0.05)
            await tap.until_covered(job_id, count, within=30)
            await asyncio.sleep(1)  # anything a second holder sent would be here by now
            await wait_filed(pool, job_id, count, within=180)

        assert all(s.process.poll() is None for s in both), "a scheduler died during the run"
        assert len(owners) > 10, "the run was too short to observe"
        assert set(owners) <= {s.owner for s in both}, (
            f"held by {set(owners)}; ours are {[s.owner for s in both]}: another scheduler"
            " is running (was the stack restarted during the test?)"
        )
        assert len(set(owners)) == 1, f"the lease changed hands with both alive: {Counter(owners)}"

        batches = tap.batches[job_id]
        seqs = Counter(b.batch_seq for b in batches)
        assert [seq for seq, n in seqs.items() if n > 1] == [], "a batch was sent twice"
        assert sorted(seqs) == list(range(len(seqs))), "batch_seq has gaps"
        recipients = tap.recipients(job_id)
        assert len(recipients) == count
        assert max(recipients.values()) == 1, "a recipient was sent twice"

        done = await campaign(api, job_id)
        assert (done["recipientsTotal"], done["recipientsProduced"]) == (count, count)
        assert done["batchesSent"] == len(batches)
        await assert_each_contact_filed_once(pool, job_id, run, count)
    finally:
        await clean_up(pool, redis_client, run, job_id)
