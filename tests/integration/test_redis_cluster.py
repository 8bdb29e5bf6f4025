"""Pigeonhole on a Redis Cluster (the stack script's local 3 masters, tests/cluster.py),
with the real PostgreSQL and Kafka: the key layout, caps across nodes, a node that lost
its data, and a message delivered and phoned home with both services' Redis clients made
from a ``redis-cluster://`` URL. (The cap, rebuild and version-read tests of
test_frequency_caps.py, test_caps_rebuild.py and test_inbox_versions.py run on the
cluster too, through the ``any_redis`` fixture.)"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from services.delivery.adapters import PgDeliveryStore, RedisInboxSignal
from services.delivery.caps import FrequencyCaps, app_caps
from services.delivery.deliverer import BatchDeliverer
from services.sync.main import create_app
from shared.events import BatchDelivered, Recipient, SendBatch, SendOptions
from shared.redis_keys import bump_inbox_versions, cap_key, caps_rebuilt, inbox_version
from shared.redis_slots import SLOT_TAGS, tag_of
from shared.settings import SyncSettings
from shared.topics import BUCKETS, bucket_of
from tests.cluster import CLUSTER_URL, node_of
from tests.conftest import device_token
from tests.e2e.conftest import Operator

NOW = datetime.now(UTC).replace(microsecond=0)
DAILY_TWO = app_caps({"app": {"perDay": 2}})


def contacts(n: int) -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"cluster-{run}-{i}" for i in range(n)]


def node_name(client: RedisCluster, key: str) -> str:
    node = client.get_node_from_key(key)
    assert node is not None
    return node.name


async def test_a_batch_s_keys_share_one_slot_and_the_buckets_spread_evenly(
    cluster_client: RedisCluster,
) -> None:
    one_bucket = [c for c in contacts(3000) if bucket_of(c) == 5]
    slots = {key_slot(cap_key(c, "app:a").encode()) for c in one_bucket}
    slots |= {key_slot(inbox_version(c).encode()) for c in one_bucket}
    assert slots == {key_slot(caps_rebuilt(tag_of(one_bucket[0])).encode())} == {5 * 64}

    nodes = Counter(node_name(cluster_client, caps_rebuilt(t)) for t in SLOT_TAGS)
    assert sorted(nodes.values()) == [85, 85, 86] and sum(nodes.values()) == BUCKETS


async def test_a_batch_across_every_node_is_capped_per_contact_and_counted_once(
    cluster_client: RedisCluster, pool: asyncpg.Pool
) -> None:
    caps, batch = FrequencyCaps(cluster_client, pool), contacts(300)
    nodes = {node_name(cluster_client, inbox_version(c)) for c in batch}
    assert len(nodes) == 3
    for job in (1, 1, 2):  # job 1 redelivered: counted once
        assert await caps.admit(job, batch, DAILY_TWO, NOW) == set()
    assert await caps.admit(3, batch, DAILY_TWO, NOW) == set(batch)
    recorded = await pool.fetchval(
        "SELECT count(*) FROM cap_hits WHERE contact_id = ANY($1)", batch
    )
    assert recorded == 2 * len(batch)


async def test_masters_that_forgot_the_scripts_are_given_them_again(
    cluster_client: RedisCluster,
) -> None:  # as after a restart: the next batch loads the scripts and is counted
    batch = [c for c in contacts(2000) if bucket_of(c) == 200]
    for primary in cluster_client.get_primaries():
        node = aioredis.Redis(host=primary.host, port=int(primary.port))
        await node.script_flush()
        await node.aclose()
    assert await FrequencyCaps(cluster_client).admit(1, batch, DAILY_TWO, NOW) == set()
    await bump_inbox_versions(cluster_client, batch)
    assert await cluster_client.zcard(cap_key(batch[0], "app:app")) == 1
    assert await cluster_client.exists(*(inbox_version(c) for c in batch)) == len(batch)


async def test_a_node_that_lost_its_data_is_rebuilt_and_the_caps_still_bite(
    cluster_client: RedisCluster, pool: asyncpg.Pool
) -> None:
    caps, (who, *others) = FrequencyCaps(cluster_client, pool), contacts(40)
    for job in (1, 2):
        assert await caps.admit(job, [who, *others], DAILY_TWO, NOW) == set()
    node = await node_of(cluster_client, cap_key(who, "app:app"))
    try:
        await node.flushall()  # that master restarted empty (no persistence)
    finally:
        await node.aclose()
    assert not await cluster_client.exists(caps_rebuilt(tag_of(who)))

    assert await caps.admit(3, [who, *others], DAILY_TWO, NOW) == {who, *others}
    assert await cluster_client.zcard(cap_key(who, "app:app")) == 2
    assert await cluster_client.exists(caps_rebuilt(tag_of(who)))


@pytest.fixture
async def cluster_sync() -> AsyncIterator[httpx.AsyncClient]:
    """The device API built in-process with its Redis client made from the cluster URL."""
    sync_app = create_app(SyncSettings(redis_url=CLUSTER_URL))
    async with sync_app.router.lifespan_context(sync_app):
        assert isinstance(sync_app.state.redis, RedisCluster)
        transport = httpx.ASGITransport(app=sync_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sync") as client:
            yield client


def batch(job_id: int, content_id: str, app_key: str, who: str) -> SendBatch:
    return SendBatch(
        job_id=job_id,
        batch_seq=0,
        bucket=bucket_of(who),
        content_id=content_id,
        content_kind="inapp",
        app_keys=[app_key],
        options=SendOptions(using_app_frequency=True),
        launched_at=datetime.now(UTC),
        recipients=[Recipient(contact_id=who)],
    )


async def test_a_message_delivered_on_a_cluster_reaches_the_device(
    api: httpx.AsyncClient,
    pool: asyncpg.Pool,
    cluster_client: RedisCluster,
    cluster_sync: httpx.AsyncClient,
) -> None:
    response = await api.post("/apps", json={"name": "cluster", "frequencyLimits": {"perDay": 1}})
    app = response.json()["data"]
    operator = Operator(api, pool, app)
    who, content_id = await operator.contact("cluster"), await operator.inapp()
    emitted: list[BatchDelivered] = []

    async def emit(result: BatchDelivered) -> None:
        emitted.append(result)

    deliverer = BatchDeliverer(
        PgDeliveryStore(pool),
        FrequencyCaps(cluster_client, pool),
        RedisInboxSignal(cluster_client),
        emit,
    )
    headers = {
        "X-App-Key": app["appKey"],
        "Authorization": f"Bearer {device_token(app['appSecret'], who)}",
    }

    async def phone_home(cursor: str | None) -> Any:
        body = {"platform": "gcm", "cursor": cursor}
        answer = await cluster_sync.post("/v1/sync", json=body, headers=headers)
        assert answer.status_code == 200, answer.text
        return answer.json()

    first = await phone_home(None)
    assert first["messages"] == [] and (await phone_home(first["cursor"]))["changed"] is False

    job, over = -int(uuid.uuid4().int % 10**12) - 1, -int(uuid.uuid4().int % 10**12) - 1
    try:
        for sent in (batch(job, content_id, app["appKey"], who),) * 2 + (
            batch(over, content_id, app["appKey"], who),
        ):
            await deliverer.deliver(sent)
        outcomes = [(o.outcome, o.reason) for result in emitted for o in result.outcomes]
        assert outcomes == [
            ("delivered", None),
            ("skipped", "duplicate"),
            ("skipped", "frequency_capped"),
        ]
        after = await phone_home(first["cursor"])
        assert after["changed"] is True
        assert [m["inAppContentId"] for m in after["messages"]] == [content_id]
        assert (await phone_home(after["cursor"]))["changed"] is False
    finally:
        await pool.execute("DELETE FROM inbox_entries WHERE send_job_id = ANY($1)", [job, over])
        await pool.execute("DELETE FROM cap_hits WHERE send_job_id = ANY($1)", [job, over])
