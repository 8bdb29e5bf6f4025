"""Several delivery workers, for real: three processes in the stack's consumer group, one
SIGKILLed in the middle of a send; the other two take its partitions and every recipient
is filed exactly once.

The workers are the stack's own, started as `make up` starts them with
PIGEONHOLE_DELIVERY_WORKERS=3 (`deploy/local/services.sh up delivery`: delivery,
delivery-2 and delivery-3 on web ports 9102-9104), and the count the stack ran before is
restored at the end, whatever the outcome (which stops the extra ones again); Prometheus
scrapes each of them meanwhile. The batches are produced by the test for a completed send
job, as in test_delivery_failover, so "nothing lost, nothing doubled" is checked against
what was really sent. Each process names itself in the group (client id
``pigeonhole-delivery-<host>-<web port>``), so the test knows which partitions the killed
one held.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from shared.settings import CommonSettings, DeliverySettings
from shared.topics import SENDS, bucket_of, partition_of
from tests.e2e.test_delivery_failover import (
    OutcomeTap,
    clean_up,
    completed_job,
    filed,
    import_contacts,
    plan,
    stats,
)
from tests.kafka_tap import produce_batches
from tests.seed_payloads import BOTTOM_BANNER
from tests.stack_control import alive, delivery_port, service_processes, start_stack_services

pytestmark = pytest.mark.e2e

WORKERS = 3
COUNT = 30_000
GROUP = DeliverySettings().consumer_group
PROMETHEUS = f"http://127.0.0.1:{os.environ.get('PIGEONHOLE_PROMETHEUS_PORT', '9090')}"


# ---------------------------------------------------------------- the group


async def group_assignment(bootstrap: str) -> tuple[str, dict[int, set[int]]]:
    """The consumer group's state and, per member, the partitions of pigeonhole.sends it
    holds, by the web port in its client id."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([GROUP])
    finally:
        await admin.close()
    _error, _group, state, _kind, _protocol, members = response.groups[0]
    held: dict[int, set[int]] = {}
    for _member_id, client_id, _host, _metadata, assignment in members:
        port = int(client_id.rsplit("-", 1)[1])
        decoded = ConsumerProtocolMemberAssignment.decode(assignment) if assignment else None
        topics = dict(decoded.assignment) if decoded else {}
        held[port] = set(topics.get(SENDS.name, ()))
    return str(state), held


async def settled(bootstrap: str, ports: set[int], within: float) -> dict[int, set[int]]:
    """Wait until the group is stable with exactly the workers on ``ports``, every
    partition held by one of them; return who holds which."""
    deadline = time.monotonic() + within
    while True:
        state, held = await group_assignment(bootstrap)
        partitions = [p for owned in held.values() for p in owned]
        if (
            state == "Stable"
            and set(held) == ports
            and sorted(partitions) == [*range(SENDS.partitions)]
        ):
            return held
        assert time.monotonic() < deadline, f"group {state}, {held}; wanted {sorted(ports)}"
        await asyncio.sleep(0.5)


async def scraped(ports: set[int], within: float) -> None:
    """Wait until Prometheus (make up's) scrapes every delivery process, each up."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=PROMETHEUS, timeout=5) as prometheus:
        while True:
            answer = (await prometheus.get("/api/v1/targets")).json()
            up = {t["labels"]["instance"] for t in answer["data"]["activeTargets"]
                  if t["health"] == "up"}  # fmt: skip
            if {f"127.0.0.1:{port}" for port in ports} <= up:
                return
            assert time.monotonic() < deadline, f"Prometheus scrapes {sorted(up)}"
            await asyncio.sleep(0.5)


def workers_at(count: int) -> int:
    """Run the stack's delivery with ``count`` processes (services.sh up delivery)."""
    env = {"PIGEONHOLE_DELIVERY_WORKERS": str(count)}
    return start_stack_services("delivery", env=env)


@pytest.fixture
def three_workers() -> Iterator[dict[str, int]]:
    """The stack's delivery as (at least) three processes; afterwards as many as before."""
    before = len(service_processes("delivery")) or 1
    try:
        assert workers_at(max(WORKERS, before)) == 0, "services.sh up delivery failed"
        processes = service_processes("delivery")
        assert len(processes) >= WORKERS, processes
        yield processes
    finally:
        assert workers_at(before) == 0, "services.sh could not restore the delivery workers"
        assert len(service_processes("delivery")) == before


# ---------------------------------------------------------------- the test


def remaining_by_port(
    held: dict[int, set[int]], sent: Counter[int], done: Counter[int]
) -> dict[int, int]:
    """Recipients not filed yet, per worker (by the partitions it holds)."""
    return {port: sum(sent[p] - done[p] for p in parts) for port, parts in held.items()}


async def filed_by_partition(pool: asyncpg.Pool, job_id: int) -> Counter[int]:
    rows = await pool.fetch("SELECT contact_id FROM inbox_entries WHERE send_job_id = $1", job_id)
    return Counter(partition_of(bucket_of(r["contact_id"]), SENDS.partitions) for r in rows)


async def test_three_workers_one_killed_mid_send_the_others_take_its_partitions(
    three_workers: dict[str, int],
    api: httpx.AsyncClient,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    settings: CommonSettings,
    app: dict[str, str],
) -> None:
    bootstrap = settings.kafka_bootstrap
    ports = {delivery_port(name): pid for name, pid in three_workers.items()}
    held = await settled(bootstrap, set(ports), within=60)
    await scraped(set(ports), within=30)
    run, job_id = uuid.uuid4().hex[:10], 0
    ids = [f"dw-{run}-{i}" for i in range(COUNT)]
    sent = Counter(partition_of(bucket_of(c), SENDS.partitions) for c in ids)
    try:
        await import_contacts(api, run, ids)
        content = await api.post("/channels/push/inappcontent", json=BOTTOM_BANNER)
        assert content.status_code == 201, content.text
        content_id = content.json()["data"]["id"]
        job_id = await completed_job(pool, content_id, app["appKey"])
        async with OutcomeTap(settings, job_id) as tap:
            await produce_batches(bootstrap, plan(job_id, content_id, app["appKey"], ids))

            # SIGKILL, once 10 % is filed, the worker (not the first) with most still to do
            deadline = time.monotonic() + 60
            while await filed(pool, job_id) < COUNT // 10:
                assert time.monotonic() < deadline, "10 % of the send not filed in 60 s"
                await asyncio.sleep(0.05)
            left = remaining_by_port(held, sent, await filed_by_partition(pool, job_id))
            victim = max((p for p in ports if p != min(ports)), key=left.__getitem__)
            os.kill(ports[victim], signal.SIGKILL)
            killed_at = time.monotonic()
            while alive(ports[victim]):
                assert time.monotonic() - killed_at < 10, f"{victim} survived SIGKILL"
                await asyncio.sleep(0.05)
            await asyncio.sleep(1)  # a statement it had in flight may still commit
            at_kill = await filed_by_partition(pool, job_id)
            assert remaining_by_port(held, sent, at_kill)[victim] > 0, "killed too late"

            # the two others take its partitions
            survivors = await settled(bootstrap, set(ports) - {victim}, within=60)
            assert held[victim] <= set().union(*survivors.values())

            deadline = time.monotonic() + 120
            while (now := await filed(pool, job_id)) < COUNT:
                assert time.monotonic() < deadline, f"{now} of {COUNT} filed in 120 s"
                await asyncio.sleep(0.5)
            await tap.until_covered(COUNT, within=30)
            await asyncio.sleep(1)  # the outcomes of batches handed over again, if any

        # what the killed worker left in its partitions, the others filed
        after = await filed_by_partition(pool, job_id)
        print(
            f"\nkilled the worker on {victim} (partitions {sorted(held[victim])}) with"
            f" {sum(at_kill.values())} of {COUNT} filed, {sum(at_kill[p] for p in held[victim])}"
            f" of its {sum(sent[p] for p in held[victim])}; its partitions went to"
            f" {sorted(survivors)}: {[sorted(survivors[p]) for p in sorted(survivors)]}"
        )
        assert {p: after[p] for p in held[victim]} == {p: sent[p] for p in held[victim]}
        assert sum(after[p] - at_kill[p] for p in held[victim]) > 0
        assert_each_filed_once(await contacts_filed(pool, job_id), ids)
        for port, partitions in survivors.items():  # the dashboard's lag: no stale partition
            assert await lag_partitions(port) <= partitions, f"{port} reports others' lag"
        assert_outcomes_consistent(tap.reasons, ids)
        deadline = time.monotonic() + 30
        while sum((await stats(pool, job_id)).values()) < COUNT:
            assert time.monotonic() < deadline, f"stats after 30s: {await stats(pool, job_id)}"
            await asyncio.sleep(0.2)
        await asyncio.sleep(1)
        assert await stats(pool, job_id) == {"delivered": COUNT}
    finally:
        await clean_up(pool, redis_client, ids, job_id)


async def lag_partitions(port: int) -> set[int]:
    """The partitions a worker reports consumer lag for, on its /metrics."""
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    return {
        int(line.split('partition="', 1)[1].split('"', 1)[0])
        for line in text.splitlines()
        if line.startswith("pigeonhole_delivery_consumer_lag{")
    }


async def contacts_filed(pool: asyncpg.Pool, job_id: int) -> Counter[str]:
    rows = await pool.fetch("SELECT contact_id FROM inbox_entries WHERE send_job_id = $1", job_id)
    return Counter(r["contact_id"] for r in rows)


def assert_each_filed_once(entries: Counter[str], ids: list[str]) -> None:
    missing, foreign = set(ids) - set(entries), set(entries) - set(ids)
    assert not missing, f"{len(missing)} recipients lost, e.g. {sorted(missing)[:5]}"
    assert not foreign, f"entries for non-recipients, e.g. {sorted(foreign)[:5]}"
    doubled = [c for c, n in entries.items() if n > 1]
    assert not doubled, f"{len(doubled)} recipients filed twice, e.g. {doubled[:5]}"


def assert_outcomes_consistent(reasons: dict[str, list[str]], ids: list[str]) -> None:
    """Everyone delivered or (a batch handed over again) duplicate, nobody delivered twice;
    a recipient only ever reported duplicate was filed by the killed worker, whose outcome
    never went out: at most its batches in flight."""
    assert set(reasons) == set(ids)
    other = {c: r for c, r in reasons.items() if set(r) - {"delivered", "duplicate"}}
    assert not other, f"{len(other)} with other outcomes, e.g. {list(other.items())[:3]}"
    twice = [c for c, r in reasons.items() if r.count("delivered") > 1]
    assert not twice, f"{len(twice)} reported delivered twice, e.g. {twice[:5]}"
    only_duplicate = {c for c, r in reasons.items() if "delivered" not in r}
    buckets = {bucket_of(c) for c in only_duplicate}  # one batch per bucket in this send
    assert len(buckets) <= DeliverySettings().batches_in_flight, (
        f"{len(only_duplicate)} never reported delivered, in {len(buckets)} buckets"
    )
