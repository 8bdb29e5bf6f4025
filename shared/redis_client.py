"""One Redis client factory for every service: a single Redis or a Redis Cluster, chosen by
the URL in ``PIGEONHOLE_REDIS_URL``.

- ``redis://[[user]:password@]host:port/db`` (``rediss://`` for TLS, ``unix://`` too): one
  Redis (with replicas behind it if you like); ``redis.asyncio.Redis``.
- ``redis-cluster://[[user]:password@]host:port,host:port,...`` (``rediss-cluster://`` for
  TLS): a Redis Cluster, given by one or more seed nodes (the client learns the others and
  the slot map from them); ``redis.asyncio.cluster.RedisCluster``. A cluster has no
  database number; a path or query string is refused.

Every key Pigeonhole writes carries a hash tag (shared/redis_slots.py), and every call that
names several keys names keys of one slot, or is split per slot (``run_per_slot``,
``read_many``), so both clients work with the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

RedisClient = Redis | RedisCluster
CLUSTER_SCHEMES = {"redis-cluster": False, "rediss-cluster": True}  # scheme: TLS


def connect(url: str, **options: Any) -> RedisClient:
    """A client for the URL (see the module docstring); ``options`` go to the client (e.g.
    ``socket_connect_timeout``). Nothing connects until the first command."""
    parts = urlsplit(url)
    if parts.scheme not in CLUSTER_SCHEMES:
        return Redis.from_url(url, **options)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"a {parts.scheme}:// URL takes seed nodes only (host:port,...)")
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    nodes = [_node(address) for address in hosts.split(",") if address]
    if not nodes:
        raise ValueError(f"a {parts.scheme}:// URL needs at least one host:port")
    if CLUSTER_SCHEMES[parts.scheme]:
        options.setdefault("ssl", True)
    return RedisCluster(
        startup_nodes=nodes,
        username=unquote(username) or None,
        password=unquote(password) or None,
        **options,
    )


def _node(address: str) -> ClusterNode:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"not a host:port: {address!r}")
    return ClusterNode(host.strip("[]"), int(port))


async def run_per_slot(
    client: RedisClient, script: AsyncScript, calls: Sequence[tuple[list[str], list[Any]]]
) -> list[Any]:
    """Run ``script`` once per (keys, args), each call's keys in one slot; return the
    replies in order. One call is sent as is (the usual batch: one bucket, one slot);
    several go in one pipeline, which a cluster client splits into one round trip per node.
    A node that has not seen the script yet gets it loaded and its calls sent again."""
    if len(calls) == 1:
        keys, args = calls[0]
        if isinstance(client, RedisCluster):
            return [await _on_slot_node(client, script, keys, args)]
        return [await script(keys=keys, args=args)]
    pipe = client.pipeline(transaction=False) if isinstance(client, Redis) else client.pipeline()
    for keys, args in calls:
        pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
    replies: list[Any] = await pipe.execute(raise_on_error=False)
    for i, reply in enumerate(replies):
        if isinstance(reply, NoScriptError):
            keys, args = calls[i]
            replies[i] = await script(keys=keys, args=args)  # loads it, then runs
        elif isinstance(reply, Exception):
            raise reply
    return replies


async def _on_slot_node(
    client: RedisCluster, script: AsyncScript, keys: list[str], args: list[Any]
) -> Any:
    """The script on the master of its keys' slot, found from one key: redis-py would hash
    every key to route the call (2,001 for a batch's cap check, ~7 ms of CPU), though
    they share one slot by construction. A MOVED reply is still followed."""
    await client.initialize()  # the slot map: at once unless a failure invalidated it
    node = client.get_node_from_key(keys[-1])
    try:
        return await client.execute_command(
            "EVALSHA", script.sha, len(keys), *keys, *args, target_nodes=node
        )
    except NoScriptError:
        await client.script_load(script.script)  # on every master
        return await client.execute_command(
            "EVALSHA", script.sha, len(keys), *keys, *args, target_nodes=node
        )


async def read_many(client: RedisClient, keys: list[str]) -> list[Any]:
    """GET of many keys: one MGET on a single Redis; on a cluster one MGET per slot,
    pipelined (one round trip per node)."""
    if isinstance(client, RedisCluster):
        return await client.mget_nonatomic(keys)
    return await client.mget(keys)


async def write_many(client: RedisClient, values: dict[str, str]) -> None:
    """SET of many keys: one MSET on a single Redis; on a cluster one MSET per slot,
    pipelined (one round trip per node)."""
    if isinstance(client, RedisCluster):
        await client.mset_nonatomic(values)
    else:
        await client.mset(values)
