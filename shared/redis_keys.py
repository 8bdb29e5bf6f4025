"""Redis key names shared by delivery (writer) and sync (reader). Redis only holds what
can be rebuilt from PostgreSQL: losing it costs a full sync, never a message."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from redis.asyncio import Redis

PREFIX = "ph"
TIMEOUT = 5.0


def inbox_version(contact_id: str) -> str:
    """A counter bumped whenever the contact's inbox changes; sync's cursor compares it."""
    return f"{PREFIX}:inbox:{{{contact_id}}}:v"


# SET NX then INCR for every key: one call, one reply (see bump_inbox_versions)
_BUMP = """
for _, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[1], 'NX')
  redis.call('INCR', key)
end
return #KEYS
"""


async def bump_inbox_versions(redis: Redis, contact_ids: Iterable[str]) -> None:
    """Mark inboxes changed in one script call. A missing version starts at the current
    time in milliseconds, so after a Redis data loss versions never repeat one a device
    already holds as its cursor. A stalled Redis raises TimeoutError after TIMEOUT seconds."""
    keys = [inbox_version(contact_id) for contact_id in contact_ids]
    if not keys:
        return
    async with asyncio.timeout(TIMEOUT):
        await redis.eval(_BUMP, len(keys), *keys, int(time.time() * 1000))
