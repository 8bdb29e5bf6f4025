"""One fault per test, each in the middle of a 20,000-recipient campaign (conftest.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections import Counter
from typing import Any

import asyncpg
import httpx
import pytest

from tests.faults.conftest import (
    AUDIENCE,
    Campaign,
    FaultReport,
    all_ready,
    log_lines,
    record,
    services_not_ready_during,
    stack,
)
from tests.seed_payloads import BOTTOM_BANNER
from tests.stack_control import service_pid, start_stack_services

pytestmark = [pytest.mark.e2e, pytest.mark.faults, pytest.mark.timeout(600)]


async def exactly_once(campaign: Campaign, fault: str, recovered: float, note: str = "") -> None:
    contacts, duplicates = await campaign.filed()
    record(FaultReport(fault, contacts, AUDIENCE, duplicates, round(recovered, 1), note))
    assert (contacts, duplicates) == (AUDIENCE, 0)
    await campaign.stats_match_truth()


@pytest.mark.usefixtures("stack_restored")
async def test_kafka_broker_stopped_for_15_seconds(campaign: Campaign, source_id: int) -> None:
    await campaign.start(source_id)
    await campaign.batches_sent_at_least(40)
    lines_before = log_lines()
    stack("stop", "kafka")
    not_ready = await services_not_ready_during(15)
    stack("start", "kafka")
    back = time.monotonic()
    await all_ready(within=120)  # nobody restarts a service: they recover
    logged = log_lines() - lines_before
    done = await campaign.completed()
    await exactly_once(
        campaign, "Kafka broker stopped 15 s", done - back,
        f"not ready meanwhile: {sorted(not_ready)}; {logged} log lines",
    )  # fmt: skip
    # the workers that need Kafka said so, and the outage did not flood the logs
    assert {"scheduler", "delivery"} <= not_ready, not_ready
    assert logged < 500, f"{logged} log lines during a 15 s broker outage"


@pytest.mark.usefixtures("stack_restored")
async def test_postgres_stopped_for_30_seconds(
    campaign: Campaign, source_id: int, api: httpx.AsyncClient, app: dict[str, str]
) -> None:
    await campaign.start(source_id)
    await campaign.batches_sent_at_least(40)
    stack("stop", "postgres")
    stopped = time.monotonic()
    # meanwhile the API refuses with 503 (never a 500, never a 202 for what it cannot store)
    send = {
        "channelQualifiers": [app["appKey"]],
        "content": {"inAppMessage": {"inAppContentId": "whatever"}},
        "contacts": [{"contactId": "nobody"}],
    }
    answers: Counter[int] = Counter()
    not_ready: set[str] = set()
    while time.monotonic() - stopped < 30:
        not_ready |= await services_not_ready_during(0)
        for response in (
            await api.post("/channels/push/sends", json=send),
            await api.get(f"/campaigns/{campaign.id}"),
        ):
            answers[response.status_code] += 1
            if response.status_code == 503:
                assert response.headers.get("retry-after"), response.headers
        await asyncio.sleep(1)
    assert set(answers) == {503}, answers
    assert not_ready == {"publisher", "sync", "scheduler", "delivery"}, not_ready
    stack("start", "postgres")
    back = time.monotonic()
    ready = await all_ready(within=120)
    done = await campaign.completed()
    await exactly_once(
        campaign, "PostgreSQL stopped 30 s", done - back, f"API: {dict(answers)}; ready {ready}"
    )


@pytest.mark.usefixtures("stack_restored")
async def test_redis_restarted_keeps_caps(
    campaign: Campaign, source_id: int, api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    tag = f"fault-cap-{uuid.uuid4().hex[:6]}"
    response = await api.put(f"/tag-caps/{tag}", json={"maxCount": 1, "periodSeconds": 86400})
    assert response.status_code == 200, response.text
    await campaign.start(source_id, tags=[tag])
    await campaign.batches_sent_at_least(40)
    stack("stop", "redis")
    stack("start", "redis")
    back = time.monotonic()
    await all_ready(within=120)
    done = await campaign.completed()
    await exactly_once(campaign, "Redis restarted", done - back)
    # the tag cap (one per day) counted every delivery of the first campaign: a second
    # campaign with the tag reaches nobody
    second = Campaign(campaign.api, pool, campaign.app_key)
    await second.start(source_id, tags=[tag])
    deadline = time.monotonic() + 240
    while True:
        data = (await api.get("/stats", params={"campaignId": second.id})).json()["data"]
        if data["skipped"].get("frequency_capped") == AUDIENCE:
            break
        assert time.monotonic() < deadline, data
        await asyncio.sleep(1)
    assert data["delivered"] == 0
    assert (
        await pool.fetchval("SELECT count(*) FROM inbox_entries WHERE send_job_id = $1", second.id)
        == 0
    )


async def _kill_and_restart(name: str, campaign: Campaign, source_id: int) -> tuple[float, float]:
    """SIGKILL the stack's ``name`` mid-campaign and start it again; return (seconds from
    the kill until batches flowed again, seconds from the restart to completion)."""
    await campaign.start(source_id)
    await campaign.batches_sent_at_least(40)
    os.kill(service_pid(name), signal.SIGKILL)
    killed = time.monotonic()
    await asyncio.sleep(1)
    assert start_stack_services() == 0
    restarted = time.monotonic()
    before = (await campaign.status())["batchesSent"]
    resumed = None
    while resumed is None:
        status = await campaign.status()
        if status["batchesSent"] > before or status["status"] == "completed":
            resumed = time.monotonic() - killed
        assert time.monotonic() - killed < 120, "nothing moved for 2 minutes after the kill"
        await asyncio.sleep(0.2)
    done = await campaign.completed()
    return resumed, done - restarted


@pytest.mark.usefixtures("stack_restored")
async def test_delivery_worker_sigkilled(campaign: Campaign, source_id: int) -> None:
    _, recovered = await _kill_and_restart("delivery", campaign, source_id)
    await exactly_once(campaign, "delivery worker SIGKILLed", recovered)


@pytest.mark.usefixtures("stack_restored")
async def test_scheduler_sigkilled_hands_over_within_10_seconds(
    campaign: Campaign, source_id: int
) -> None:
    resumed, recovered = await _kill_and_restart("scheduler", campaign, source_id)
    await exactly_once(
        campaign, "scheduler SIGKILLed", recovered, f"batches again {resumed:.1f} s after kill"
    )
    # the dead scheduler's lease (9 s) lapses, the new one claims it: about 10 s, not 30
    assert resumed < 15, resumed


@pytest.mark.usefixtures("stack_restored")
async def test_publisher_sigkilled_while_accepting_sends(
    api: httpx.AsyncClient, app: dict[str, str], audience: list[str], pool: asyncpg.Pool
) -> None:
    """20 senders of 1,000 recipients each retry their send (same Idempotency-Key) until
    it is accepted; the publisher is SIGKILLed while they send. Every accepted send is one
    job, and its recipients are filed once."""
    content = await api.post("/channels/push/inappcontent", json=BOTTOM_BANNER)
    content_id = content.json()["data"]["id"]
    groups = [audience[i : i + 1000] for i in range(0, AUDIENCE, 1000)]
    keys = [f"fault-{uuid.uuid4().hex}" for _ in groups]
    accepted: dict[str, int] = {}
    some_accepted = asyncio.Event()

    async def sender(key: str, contacts: list[str]) -> None:
        body = {
            "channelQualifiers": [app["appKey"]],
            "content": {"inAppMessage": {"inAppContentId": content_id}},
            "contacts": [{"contactId": c} for c in contacts],
        }
        deadline = time.monotonic() + 180
        while key not in accepted:
            assert time.monotonic() < deadline, f"send {key} never accepted"
            try:
                response = await api.post(
                    "/channels/push/sends", json=body, headers={"Idempotency-Key": key}
                )
            except httpx.HTTPError:
                await asyncio.sleep(0.2)  # the publisher is down: retry, as a client would
                continue
            if response.status_code == 202:
                accepted[key] = response.json()["data"]["id"]
                if len(accepted) >= 5:
                    some_accepted.set()
            else:
                assert response.status_code == 503, response.text
                await asyncio.sleep(0.2)

    async def killer() -> float:
        await some_accepted.wait()
        os.kill(service_pid("publisher"), signal.SIGKILL)
        await asyncio.sleep(0.5)
        assert await asyncio.to_thread(start_stack_services) == 0
        return time.monotonic()

    started = time.monotonic()
    limit = asyncio.Semaphore(4)

    async def limited(key: str, contacts: list[str]) -> None:
        async with limit:
            await sender(key, contacts)

    killed = asyncio.create_task(killer())
    await asyncio.gather(*(limited(k, g) for k, g in zip(keys, groups, strict=True)))
    restarted = await killed
    assert len(set(accepted.values())) == len(groups)  # one job per key, none lost
    # the content is this test's own: any second job for one key would show up here
    deadline = time.monotonic() + 240
    while True:
        filed: Any = await pool.fetchrow(
            """SELECT count(DISTINCT contact_id) AS contacts, count(*) AS entries,
                      count(DISTINCT send_job_id) AS jobs
                 FROM inbox_entries WHERE content_id = $1""",
            content_id,
        )
        if filed["entries"] >= AUDIENCE or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    duplicates = filed["entries"] - filed["contacts"]
    record(
        FaultReport(
            "publisher SIGKILLed while accepting sends",
            filed["contacts"], AUDIENCE, duplicates, round(time.monotonic() - restarted, 1),
            f"{len(groups)} sends, {filed['jobs']} jobs, {time.monotonic() - started:.0f} s in all",
        )
    )  # fmt: skip
    assert (filed["contacts"], duplicates, filed["jobs"]) == (AUDIENCE, 0, len(groups))
