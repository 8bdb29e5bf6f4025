"""Redis key names shared by delivery (writer) and sync (reader). Redis only holds what
can be rebuilt from PostgreSQL: losing it costs a full sync, never a message."""

from __future__ import annotations

import time
from collections.abc import Iterable

from redis.asyncio import Redis

PREFIX = "ph"


def inbox_version(contact_id: str) -> str:
    """A counter bumped whenever the contact's inbox changes; sync's cursor compares it."""
    return f"{PREFIX}:inbox:{{{contact_id}}}:v"


async def bump_inbox_versions(redis: Redis, contact_ids: Iterable[str]) -> None:
    """Mark inboxes changed, in one pipelined round trip. A missing version starts at the
    current time in milliseconds, so after a Redis data loss versions never repeat one a
    device already holds as its cursor."""
    start = int(time.time() * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        for contact_id in contact_ids:
            pipe.set(inbox_version(contact_id), start, nx=True)
            pipe.incr(inbox_version(contact_id))
        await pipe.execute()
