"""Fixtures for running Redis tests against both a single Redis and a Redis Cluster.

The cluster is the stack script's local 3-master Redis Cluster (``make up`` starts it;
``bash deploy/local/stack.sh start redis-cluster`` alone), on ports
``PIGEONHOLE_REDIS_CLUSTER_PORTS`` (7001,7002,7003). The stack's services never use it:
tests build their own clients and apps against it. Tests remove only their own keys.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from shared.redis_client import RedisClient, connect

CLUSTER_PORTS = os.environ.get("PIGEONHOLE_REDIS_CLUSTER_PORTS", "7001,7002,7003").split(",")
CLUSTER_URL = "redis-cluster://" + ",".join(f"127.0.0.1:{port}" for port in CLUSTER_PORTS)


@pytest.fixture(scope="session")
async def cluster_client() -> AsyncIterator[RedisCluster]:
    client = connect(CLUSTER_URL)
    assert isinstance(client, RedisCluster)
    try:
        await client.ping()
    except Exception as exc:  # say what to start rather than a connection traceback
        pytest.fail(f"no Redis Cluster on {CLUSTER_URL} ({exc!r}): run make up")
    yield client
    await client.aclose()


@pytest.fixture(params=["redis", "cluster"])
def any_redis(
    request: pytest.FixtureRequest, redis_client: aioredis.Redis, cluster_client: RedisCluster
) -> RedisClient:
    """The stack's single Redis, then the local Redis Cluster: the test runs on both."""
    return redis_client if request.param == "redis" else cluster_client


async def node_of(client: RedisCluster, key: str) -> aioredis.Redis:
    """A plain client of the master that holds ``key``'s slot (to empty that node)."""
    node = client.get_node_from_key(key)
    assert node is not None
    return aioredis.Redis(host=node.host, port=int(node.port))
