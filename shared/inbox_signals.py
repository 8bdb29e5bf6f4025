""" "This contact's inbox changed": the signal that wakes its live streams (GET /v1/stream).

Whoever bumps inbox versions (delivery after filing a batch, sync after a read or a
delete) also publishes the contacts it changed, one Redis PUBLISH per bucket — a batch
holds one bucket, so delivery pays one command per batch, never one per recipient. Every
sync process subscribes to all buckets' channels (``PATTERN``) and wakes the streams of
the contacts named that it holds; a stream then reads the contact's version and counts,
as a phone home would. A signal carries no state: one that is lost (a sync process
reconnecting to Redis) costs latency, never correctness, because a stream re-checks
after every reconnect and after every heartbeat.

Channels carry the bucket's slot tag (``ph:changed:{<tag>}``) so a Redis Cluster could
move to sharded pub/sub (SPUBLISH) per slot without renaming them; today a PUBLISH on a
cluster reaches every node's subscribers.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from shared.redis_client import RedisClient
from shared.redis_keys import bump_inbox_versions
from shared.redis_slots import by_tag

PREFIX = "ph:changed:"
PATTERN = PREFIX + "*"


def channel(tag: str) -> str:
    return f"{PREFIX}{{{tag}}}"


def encode(contact_ids: Iterable[str]) -> bytes:
    return orjson.dumps(list(contact_ids))


def decode(payload: bytes | str) -> list[str]:
    """The contact ids of a signal; anything else (a stranger's PUBLISH) names nobody."""
    try:
        ids = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return []
    return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []


async def publish_changes(redis: RedisClient, contact_ids: Iterable[str]) -> None:
    """Tell the sync processes these contacts' inboxes changed: one PUBLISH per bucket."""
    for tag, members in by_tag(contact_ids).items():
        await redis.publish(channel(tag), encode(members))


async def inboxes_changed(redis: RedisClient, contact_ids: Iterable[str]) -> None:
    """What every change to inboxes does: new versions for phone homes (their cursors),
    then the signal that wakes the contacts' live streams."""
    changed = list(contact_ids)
    await bump_inbox_versions(redis, changed)
    await publish_changes(redis, changed)
