"""Frequency caps survive Redis losing its data: every admitted hit is recorded in
PostgreSQL, and the sets are rebuilt from there (automatically when the rebuild marker is
gone, or by `pigeonhole caps rebuild`). Real PostgreSQL, and the single Redis and the
Redis Cluster (tests/cluster.py) in turn.

Tests remove only their own contacts' cap keys and markers, never the whole Redis
(other tests share it); the automatic rebuild then reloads every recorded hit, which
changes nothing for keys that are still there."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import redis.asyncio as aioredis

from services.delivery.caps import FrequencyCaps, app_caps, cap_key, tag_caps
from services.scheduler.purge import purge_cap_hits
from shared.cap_hits import ensure_loaded, rebuild
from shared.redis_client import RedisClient
from shared.redis_keys import CAPS_REBUILT_KEYS, caps_rebuilt
from shared.redis_slots import tag_of
from tests.conftest import cli

NOW = datetime.now(UTC).replace(microsecond=0)
DAILY_TWO = app_caps({"app": {"perDay": 2}})


@pytest.fixture
async def caps(any_redis: RedisClient, pool: asyncpg.Pool) -> AsyncIterator[FrequencyCaps]:
    yield FrequencyCaps(any_redis, pool)


def contact() -> str:
    return f"rebuild-{uuid.uuid4().hex}"


async def lose(redis: RedisClient, *contacts: str) -> None:
    """What Redis losing its data looks like to these contacts: their sets and the markers
    of their slots are gone."""
    keys = [cap_key(c, s) for c in contacts for s in ("app:app", "tag:promo")]
    await redis.delete(*keys, *{caps_rebuilt(tag_of(c)) for c in contacts})


async def hits(pool: asyncpg.Pool, who: str) -> list[tuple[int, list[str]]]:
    rows = await pool.fetch(
        "SELECT send_job_id, scopes FROM cap_hits WHERE contact_id = $1 ORDER BY 1", who
    )
    return [(r["send_job_id"], r["scopes"]) for r in rows]


async def test_admitted_recipients_are_recorded_once_and_capped_ones_not(
    caps: FrequencyCaps, pool: asyncpg.Pool
) -> None:
    who = contact()
    limits = DAILY_TWO + tag_caps({"promo": (5, 3600)})
    for job in (1, 1, 2, 3):  # job 1 redelivered; job 3 is over the daily cap
        await caps.admit(job, [who], limits, NOW)
    assert await hits(pool, who) == [(1, ["app:app", "tag:promo"]), (2, ["app:app", "tag:promo"])]


async def test_sends_without_caps_record_nothing(caps: FrequencyCaps, pool: asyncpg.Pool) -> None:
    who = contact()
    assert await caps.admit(1, [who], [], NOW) == set()
    assert await hits(pool, who) == []


async def test_after_redis_lost_its_data_the_caps_still_bite(
    caps: FrequencyCaps, any_redis: RedisClient
) -> None:
    who, fresh = contact(), contact()
    assert await caps.admit(1, [who], DAILY_TWO, NOW) == set()
    assert await caps.admit(2, [who], DAILY_TWO, NOW + timedelta(minutes=1)) == set()
    await lose(any_redis, who, fresh)

    assert await caps.admit(3, [who, fresh], DAILY_TWO, NOW + timedelta(minutes=2)) == {who}
    assert await any_redis.exists(caps_rebuilt(tag_of(who)), caps_rebuilt(tag_of(fresh))) == 2
    # rebuilt with the original scores, so the windows still roll at the right time
    key = cap_key(who, "app:app")
    assert await any_redis.zscore(key, "1") == NOW.timestamp() * 1000
    assert await any_redis.zscore(key, "2") == (NOW + timedelta(minutes=1)).timestamp() * 1000
    assert await caps.admit(2, [who], DAILY_TWO, NOW) == set()  # a redelivery stays admitted
    assert await caps.admit(4, [who], DAILY_TWO, NOW + timedelta(days=1, minutes=1)) == set()


async def test_many_workers_finding_redis_empty_rebuild_once(
    pool: asyncpg.Pool, any_redis: RedisClient
) -> None:
    await any_redis.delete(*CAPS_REBUILT_KEYS)
    done = await asyncio.gather(*(ensure_loaded(pool, any_redis) for _ in range(5)))
    # (the stack's own delivery worker may win the lock instead of these five)
    assert sum(1 for d in done if d is not None) <= 1
    assert await any_redis.exists(*CAPS_REBUILT_KEYS) == len(CAPS_REBUILT_KEYS)


async def test_the_rebuild_command_restores_lost_sets(
    pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:  # the command works on the Redis of the settings: the stack's single one
    who = contact()
    await FrequencyCaps(redis_client, pool).admit(7, [who], DAILY_TWO, NOW)
    await redis_client.delete(cap_key(who, "app:app"))  # lost, but the marker survived

    out = cli("caps", "rebuild")

    assert out.startswith("rebuilt "), out
    assert await redis_client.zrange(cap_key(who, "app:app"), 0, -1) == [b"7"]


async def test_hits_older_than_every_window_are_neither_rebuilt_nor_kept(
    pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:  # (about the retention, not the Redis: the single one only)
    old, recent = contact(), contact()
    await pool.execute(
        """INSERT INTO cap_hits (send_job_id, contact_id, scopes, counted_at)
           VALUES (1, $1, ARRAY['app:app'], now() - interval '40 days'),
                  (1, $2, ARRAY['app:app'], now() - interval '20 days')""",
        old, recent,
    )  # fmt: skip
    await rebuild(pool, redis_client)
    assert not await redis_client.exists(cap_key(old, "app:app"))
    assert await redis_client.zcard(cap_key(recent, "app:app")) == 1

    # (the running scheduler's own purge, the same code, may have taken it first)
    await purge_cap_hits(pool, chunk=1)
    assert await hits(pool, old) == []
    assert await hits(pool, recent) == [(1, ["app:app"])]
    await redis_client.delete(cap_key(recent, "app:app"))
