"""The slot-tag table (shared/redis_slots.py), the Redis client factory's URLs, and a
Redis Cluster's outages counted as Redis being down (the batch waits, fail-closed)."""

from __future__ import annotations

import pytest
import redis.exceptions
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection
from redis.crc import key_slot

from shared.failures import dependency_down
from shared.redis_client import connect
from shared.redis_keys import cap_key, cap_keys, caps_rebuilt, inbox_version
from shared.redis_slots import SLOT_TAGS, SLOTS_PER_BUCKET, by_tag, tag_of
from shared.topics import BUCKETS, bucket_of


def test_each_bucket_s_tag_hashes_to_its_evenly_spaced_slot() -> None:
    assert len(SLOT_TAGS) == BUCKETS and len(set(SLOT_TAGS)) == BUCKETS
    assert [key_slot(tag.encode()) for tag in SLOT_TAGS] == [
        bucket * SLOTS_PER_BUCKET for bucket in range(BUCKETS)
    ]


def test_a_contact_s_keys_live_in_its_bucket_s_slot() -> None:
    for contact_id in ("c-1", "someone@example.com", "ünïcode", "{braces}"):
        slot = bucket_of(contact_id) * SLOTS_PER_BUCKET
        keys = [
            cap_key(contact_id, "app:a"),
            cap_key(contact_id, "tag:t"),
            inbox_version(contact_id),
        ]
        assert {key_slot(key.encode()) for key in keys} == {slot}
        assert key_slot(caps_rebuilt(tag_of(contact_id)).encode()) == slot
        tag = tag_of(contact_id)
        assert cap_keys(tag, [contact_id], ["app:a", "tag:t"]) == keys[:2]
        assert inbox_version(contact_id, tag) == keys[2]


def test_grouping_keeps_each_group_s_order() -> None:
    ids = [f"c-{i}" for i in range(500)]
    groups = by_tag(ids)
    assert sorted(c for members in groups.values() for c in members) == sorted(ids)
    for tag, members in groups.items():
        assert {tag_of(c) for c in members} == {tag}
        assert members == [c for c in ids if tag_of(c) == tag]


async def test_a_cluster_url_makes_a_cluster_client_and_a_plain_one_a_redis() -> None:
    plain = connect("redis://127.0.0.1:6379/0")
    cluster = connect("rediss-cluster://user:p%40ss@10.0.0.1:7001,[::1]:7002")
    try:
        assert isinstance(plain, Redis) and isinstance(cluster, RedisCluster)
        assert [(n.host, n.port) for n in cluster.startup_nodes] == [
            ("10.0.0.1", 7001),
            ("::1", 7002),
        ]
        assert cluster.connection_kwargs["password"] == "p@ss"
        assert cluster.connection_kwargs["username"] == "user"
        assert cluster.connection_kwargs["connection_class"] is SSLConnection  # rediss-
    finally:
        await plain.aclose()
        await cluster.aclose()


@pytest.mark.parametrize(
    "url", ["redis-cluster://", "redis-cluster://h:1/0", "redis-cluster://h", "redis-cluster://h:x"]
)
def test_a_bad_cluster_url_is_refused_with_its_reason(url: str) -> None:
    with pytest.raises(ValueError, match=r"host:port|seed nodes"):
        connect(url)


@pytest.mark.parametrize(
    "error",
    [
        redis.exceptions.ClusterDownError("CLUSTERDOWN The cluster is down"),
        redis.exceptions.MasterDownError("MASTERDOWN Link with MASTER is down"),
        redis.exceptions.TryAgainError("TRYAGAIN Multiple keys request during rehashing"),
        redis.exceptions.SlotNotCoveredError("Slot 5 is not covered by the cluster"),
    ],
)
def test_a_cluster_outage_is_redis_being_down(error: Exception) -> None:
    assert dependency_down(error) == "redis"


def test_a_cross_slot_call_is_a_bug_not_an_outage() -> None:
    error = redis.exceptions.RedisClusterException("Keys in request don't hash to the same slot")
    assert dependency_down(error) is None
