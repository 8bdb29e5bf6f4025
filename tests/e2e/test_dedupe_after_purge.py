"""What survives housekeeping and data loss, on the real stack:

- a SendBatch consumed again after its entries expired and the purge ran (or after an
  App Inbox entry was evicted by the inbox cap) files nothing new: ``duplicate``;
- after Redis lost a contact's cap sets (and the rebuild marker), the next send over the
  cap is still ``frequency_capped``: the delivery worker rebuilt the sets from PostgreSQL.

Batches are produced onto pigeonhole.sends by the test, as the scheduler would, under a
negative job id no real send job has (see test_delivery_failover.py)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from aiokafka.structs import ConsumerRecord

from services.delivery.caps import cap_key
from services.delivery.repository import evict_oldest
from services.scheduler.purge import purge_expired
from shared.events import BatchDelivered, Recipient, SendBatch, SendOptions
from shared.redis_keys import caps_rebuilt
from shared.redis_slots import tag_of
from shared.settings import CommonSettings
from shared.topics import DELIVERIES, bucket_of
from tests.e2e.conftest import Operator
from tests.kafka_tap import TopicTap, produce_batches

pytestmark = pytest.mark.e2e


class Outcomes(TopicTap):
    """(contact, outcome or skip reason) of every job's recipients, in arrival order."""

    def __init__(self, settings: CommonSettings) -> None:
        super().__init__(settings.kafka_bootstrap, DELIVERIES)
        self.seen: dict[int, list[tuple[str, str]]] = defaultdict(list)

    def on_message(self, message: ConsumerRecord[bytes, bytes]) -> None:
        assert message.value is not None
        event = BatchDelivered.model_validate_json(message.value)
        self.seen[event.job_id] += [(o.contact_id, o.reason or o.outcome) for o in event.outcomes]

    async def of(self, job_id: int, count: int = 1, within: float = 30) -> list[tuple[str, str]]:
        deadline = time.monotonic() + within
        while len(self.seen[job_id]) < count:
            assert time.monotonic() < deadline, f"job {job_id}: {self.seen[job_id]}"
            await asyncio.sleep(0.1)
        return self.seen[job_id]


@pytest.fixture
async def outcomes(settings: CommonSettings) -> AsyncIterator[Outcomes]:
    async with Outcomes(settings) as tap:
        yield tap


def one_batch(
    job_id: int, content_id: str, kind: str, app_key: str, who: str, capped: bool = False
) -> SendBatch:
    return SendBatch(
        job_id=job_id,
        batch_seq=0,
        bucket=bucket_of(who),
        content_id=content_id,
        content_kind=kind,
        app_keys=[app_key],
        options=SendOptions(using_app_frequency=capped),
        launched_at=datetime.now(UTC),
        recipients=[Recipient(contact_id=who)],
    )


async def entries(pool: asyncpg.Pool, job_id: int) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM inbox_entries WHERE send_job_id = $1", job_id
    )
    return count


async def test_a_batch_replayed_after_its_entry_expired_and_the_purge_ran_is_a_duplicate(
    operator: Operator,
    outcomes: Outcomes,
    pool: asyncpg.Pool,
    settings: CommonSettings,
) -> None:
    who, content_id = await operator.contact("replay"), await operator.inapp()
    job_id = -int(time.time() * 1000)
    batch = one_batch(job_id, content_id, "inapp", operator.app["appKey"], who)
    await produce_batches(settings.kafka_bootstrap, [batch])
    assert await outcomes.of(job_id) == [(who, "delivered")]

    await pool.execute(
        "UPDATE inbox_entries SET expires_at = now() - interval '1 hour' WHERE send_job_id = $1",
        job_id,
    )
    await purge_expired(pool, grace_seconds=0, chunk=1000)
    # a consumer group reset, a replay from the topic
    await produce_batches(settings.kafka_bootstrap, [batch])

    assert await outcomes.of(job_id, count=2) == [(who, "delivered"), (who, "duplicate")]
    assert await entries(pool, job_id) == 1


async def test_a_batch_replayed_after_its_inbox_entry_was_evicted_is_a_duplicate(
    operator: Operator,
    outcomes: Outcomes,
    pool: asyncpg.Pool,
    settings: CommonSettings,
) -> None:
    who, content_id = await operator.contact("evicted"), await operator.inbox_message("t")
    job_id = -int(time.time() * 1000)
    batch = one_batch(job_id, content_id, "inbox", operator.app["appKey"], who)
    await produce_batches(settings.kafka_bootstrap, [batch])
    assert await outcomes.of(job_id) == [(who, "delivered")]

    assert await evict_oldest(pool, [who], 0) == 1  # what 200 newer messages would do
    await produce_batches(settings.kafka_bootstrap, [batch])

    assert await outcomes.of(job_id, count=2) == [(who, "delivered"), (who, "duplicate")]
    visible = await pool.fetchval(
        "SELECT count(*) FROM inbox_entries WHERE contact_id = $1 AND evicted_at IS NULL", who
    )
    assert (await entries(pool, job_id), visible) == (1, 0)


async def test_after_redis_lost_the_cap_sets_the_next_send_over_the_cap_is_still_capped(
    api: httpx.AsyncClient,
    operator: Operator,
    outcomes: Outcomes,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    settings: CommonSettings,
) -> None:
    response = await api.post("/apps", json={"name": "caps", "frequencyLimits": {"perDay": 1}})
    app_key = response.json()["data"]["appKey"]
    who, content_id = await operator.contact("lost"), await operator.inapp()
    first, second = -int(time.time() * 1000), -int(time.time() * 1000) - 1
    await produce_batches(
        settings.kafka_bootstrap, [one_batch(first, content_id, "inapp", app_key, who, capped=True)]
    )
    assert await outcomes.of(first) == [(who, "delivered")]
    recorded = await pool.fetchval(
        "SELECT scopes FROM cap_hits WHERE send_job_id = $1 AND contact_id = $2", first, who
    )
    assert recorded == [f"app:{app_key}"]

    # Redis lost its data, as far as this contact is concerned: its set and the marker
    await redis_client.delete(cap_key(who, f"app:{app_key}"), caps_rebuilt(tag_of(who)))

    await produce_batches(
        settings.kafka_bootstrap,
        [one_batch(second, content_id, "inapp", app_key, who, capped=True)],
    )
    assert await outcomes.of(second) == [(who, "frequency_capped")]
    assert await redis_client.zrange(cap_key(who, f"app:{app_key}"), 0, -1) == [str(first).encode()]
    assert await redis_client.exists(caps_rebuilt(tag_of(who)))
