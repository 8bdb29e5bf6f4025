"""Sync reads inbox versions in batches (shared.redis_keys.InboxVersions): each reader
gets what a GET of its own would have given, against the real Redis, single and Cluster
(tests/cluster.py: there the batch's keys span slots and nodes)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from shared.redis_client import RedisClient
from shared.redis_keys import InboxVersions, inbox_version
from tests.integration.test_bad_requests import closed_port


async def test_concurrent_reads_each_get_their_own_contacts_version(
    any_redis: RedisClient,
) -> None:
    redis_client = any_redis
    run = uuid.uuid4().hex[:8]
    contacts = [f"versions-{run}-{i}" for i in range(50)]
    for i, contact_id in enumerate(contacts[:40]):
        await redis_client.set(inbox_version(contact_id), 1000 + i)
    versions = InboxVersions(redis_client)
    reads = [*contacts, *contacts[:10]]  # some contacts twice in one batch
    got = await asyncio.gather(*(versions.get(c) for c in reads))
    expected = [await redis_client.get(inbox_version(c)) for c in reads]
    assert got == expected
    assert got[0] == b"1000" and got[45] is None  # the last ten have none
    assert await versions.get(contacts[1]) == b"1001"  # alone in its batch
    await redis_client.delete(*(inbox_version(c) for c in contacts))


async def test_every_read_of_a_batch_fails_when_redis_is_down() -> None:
    down = aioredis.from_url(f"redis://127.0.0.1:{closed_port()}/0")
    versions = InboxVersions(down)
    try:
        results = await asyncio.gather(
            *(versions.get(f"c-{i}") for i in range(5)), return_exceptions=True
        )
        assert all(isinstance(r, redis.exceptions.ConnectionError) for r in results), results
        with pytest.raises(redis.exceptions.ConnectionError):
            await versions.get("c-6")
    finally:
        await down.aclose()
