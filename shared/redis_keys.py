"""Redis key names shared by delivery (writer) and sync (reader). Redis only holds what
can be rebuilt from PostgreSQL: losing it costs a full sync, never a message."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from redis.asyncio import Redis

PREFIX = "ph"
TIMEOUT = 5.0

# Frequency caps (services/delivery/caps.py): a sorted set per (contact, scope) of send
# job ids scored by delivery time in ms, trimmed to CAP_RETENTION_MS (the longest window,
# 30 days, or a tag cap's longest period, 31 days). Rebuilt from PostgreSQL (cap_hits,
# shared/cap_hits.py) when CAPS_REBUILT is missing: it is written after every rebuild,
# so an empty Redis (data lost, FLUSHALL) lacks it. CAPS_REBUILD_LOCK lets one process
# rebuild while the others wait.
CAP_RETENTION_MS = 31 * 86_400_000
CAPS_REBUILT = f"{PREFIX}:cap:rebuilt"
CAPS_REBUILD_LOCK = f"{PREFIX}:cap:rebuilding"


def cap_key(contact_id: str, scope: str) -> str:
    """A contact's cap set for one scope ("app:<appKey>" or "tag:<tag>"). The {contact}
    hash tag keeps one contact's sets in one Redis Cluster slot."""
    return f"{PREFIX}:cap:{{{contact_id}}}:{scope}"


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
