"""Redis key names shared by delivery (writer) and sync (reader). Redis only holds what
can be rebuilt from PostgreSQL: losing it costs a full sync, never a message.

Every key of a contact carries the hash tag of its partition bucket (shared/redis_slots.py),
so on a Redis Cluster a contact's keys, and a whole batch's, live in one slot; calls that
name keys of several buckets are split per tag (one script call each, pipelined)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from redis.commands.core import AsyncScript

from shared.redis_client import RedisClient, read_many, run_per_slot
from shared.redis_slots import SLOT_TAGS, by_tag, tag_of

PREFIX = "ph"
Version = bytes | str | None  # as the client returns it (str with decode_responses)
TIMEOUT = 5.0

# Frequency caps (services/delivery/caps.py): a sorted set per (contact, scope) of send
# job ids scored by delivery time in ms, trimmed to CAP_RETENTION_MS (the longest window,
# 30 days, or a tag cap's longest period, 31 days). Rebuilt from PostgreSQL (cap_hits,
# shared/cap_hits.py) when a tag's rebuild marker is missing: every rebuild writes all
# 256 (one per tag, so each sits in the slot of the sets it vouches for), so an emptied
# Redis (data lost, FLUSHALL) or an emptied cluster node lacks the markers of its slots.
# CAPS_REBUILD_LOCK lets one process rebuild while the others wait.
CAP_RETENTION_MS = 31 * 86_400_000
CAPS_REBUILD_LOCK = f"{PREFIX}:cap:rebuilding"


def caps_rebuilt(tag: str) -> str:
    """The rebuild marker of one slot tag's cap sets."""
    return f"{PREFIX}:cap:rebuilt:{{{tag}}}"


CAPS_REBUILT_KEYS = tuple(caps_rebuilt(tag) for tag in SLOT_TAGS)


def cap_key(contact_id: str, scope: str, tag: str | None = None) -> str:
    """A contact's cap set for one scope ("app:<appKey>" or "tag:<tag>"); ``tag``, when
    the caller knows it already, saves hashing the contact id again."""
    return f"{PREFIX}:cap:{{{tag or tag_of(contact_id)}}}:{contact_id}:{scope}"


def cap_keys(tag: str, contact_ids: Iterable[str], scopes: list[str]) -> list[str]:
    """``cap_key`` of each contact (all of slot tag ``tag``) and scope, contact by contact."""
    prefix = f"{PREFIX}:cap:{{{tag}}}:"
    return [f"{prefix}{contact_id}:{scope}" for contact_id in contact_ids for scope in scopes]


def inbox_version(contact_id: str, tag: str | None = None) -> str:
    """A counter bumped whenever the contact's inbox changes; sync's cursor compares it."""
    return f"{PREFIX}:inbox:{{{tag or tag_of(contact_id)}}}:{contact_id}:v"


def inbox_version_pattern(contact_glob: str) -> str:
    """A SCAN MATCH pattern for the versions of the contacts matching ``contact_glob``."""
    return f"{PREFIX}:inbox:{{*}}:{contact_glob}:v"


def cap_key_pattern(contact_glob: str) -> str:
    """A SCAN MATCH pattern for the cap sets of the contacts matching ``contact_glob``."""
    return f"{PREFIX}:cap:{{*}}:{contact_glob}:*"


# SET NX then INCR for every key: one call, one reply (see bump_inbox_versions)
_BUMP = """
for _, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[1], 'NX')
  redis.call('INCR', key)
end
return #KEYS
"""


async def bump_inbox_versions(redis: RedisClient, contact_ids: Iterable[str]) -> None:
    """Mark inboxes changed in one script call per slot tag (a batch has one), pipelined.
    A missing version starts at the current time in milliseconds, so after a Redis data
    loss versions never repeat one a device already holds as its cursor. A stalled Redis
    raises TimeoutError after TIMEOUT seconds."""
    groups = by_tag(contact_ids)
    if not groups:
        return
    now_ms = int(time.time() * 1000)
    calls = [
        ([f"{PREFIX}:inbox:{{{tag}}}:{contact_id}:v" for contact_id in members], [now_ms])
        for tag, members in groups.items()
    ]
    async with asyncio.timeout(TIMEOUT):
        await run_per_slot(redis, AsyncScript(redis, _BUMP), calls)


class InboxVersions:
    """Reads inbox versions for many contacts at once: the reads asked for in one turn of
    the event loop go to Redis as one MGET (on a cluster one per slot, pipelined), so a
    busy sync process pays redis-py's per-command cost (connection pool, retry, parsing:
    about 50 µs of CPU a GET) once per turn, not once per phone home. A read waits at most
    one turn for its batch. A failed MGET fails every read of its batch with its error, as
    each GET would have failed; a stalled Redis raises TimeoutError after TIMEOUT seconds."""

    def __init__(self, redis: RedisClient) -> None:
        self.redis = redis
        self._asked: dict[str, list[asyncio.Future[Version]]] = {}
        self._reading: set[asyncio.Task[None]] = set()  # asyncio only keeps weak references

    async def get(self, contact_id: str) -> Version:
        """The contact's inbox version as stored, or None when it has none."""
        loop = asyncio.get_running_loop()
        if not self._asked:
            loop.call_soon(self._flush)
        answer: asyncio.Future[Version] = loop.create_future()
        self._asked.setdefault(inbox_version(contact_id), []).append(answer)
        return await answer

    def _flush(self) -> None:
        asked, self._asked = self._asked, {}
        task = asyncio.ensure_future(self._read(asked))
        self._reading.add(task)
        task.add_done_callback(self._reading.discard)

    async def _read(self, asked: dict[str, list[asyncio.Future[Version]]]) -> None:
        keys = list(asked)
        waiting = [answer for answers in asked.values() for answer in answers]
        try:
            async with asyncio.timeout(TIMEOUT):
                values = await read_many(self.redis, keys)
        except asyncio.CancelledError:
            for answer in waiting:
                answer.cancel()
            raise
        except Exception as exc:
            for answer in waiting:
                if not answer.done():  # a reader cancelled meanwhile is done
                    answer.set_exception(exc)
            return
        for key, value in zip(keys, values, strict=True):
            for answer in asked[key]:
                if not answer.done():
                    answer.set_result(value)
