"""Rebuild the frequency-cap sets in Redis from PostgreSQL's ``cap_hits``.

Every recipient a send with caps admitted has a row (written by the delivery worker right
after the Redis script counted it). A rebuild reads the rows of the last
``CAP_RETENTION_MS`` in chunks along the primary key, ZADDs them (member = send job id,
score = counted_at in ms, as the cap script does) with a few script calls per chunk, one
per slot tag and ``SCRIPT_HITS`` (pipelined: on a Redis Cluster a call names keys of one
slot), then writes every tag's rebuild marker (``caps_rebuilt``). ZADD NX of a member
already present changes nothing, so a rebuild never counts a hit twice and may run while
sends are being counted.

``ensure_loaded`` is the delivery worker's automatic path: when the cap script reports a
tag's marker missing (Redis, or the cluster node holding that slot, lost its data), one
process takes ``CAPS_REBUILD_LOCK`` and rebuilds,
the others wait for the marker; a holder that dies lets its lock expire and the next
waiter rebuilds. ``pigeonhole caps rebuild`` runs the same rebuild by hand.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from shared.redis_client import RedisClient, run_per_slot, write_many
from shared.redis_keys import (
    CAP_RETENTION_MS,
    CAPS_REBUILD_LOCK,
    CAPS_REBUILT_KEYS,
    TIMEOUT,
    cap_key,
    caps_rebuilt,
)
from shared.redis_slots import SLOT_TAGS, tag_of

log = logging.getLogger(__name__)

CHUNK = 20_000
LOCK_MS = 30_000  # renewed by every chunk, so only a dead holder lets it lapse
WAIT_SECONDS = 0.2

_CHUNK_SQL = """
SELECT send_job_id, contact_id, scopes, counted_at
  FROM cap_hits
 WHERE (send_job_id, contact_id) > ($1, $2) AND counted_at > $3
 ORDER BY send_job_id, contact_id
 LIMIT $4
"""

# KEYS: cap sets; ARGV: retention_ms, then (score, member) per key. NX: a score
# Redis still has stays (it is the one the worker counted with).
_LOAD = """
local retention = ARGV[1]
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'NX', ARGV[2 * i], ARGV[2 * i + 1])
  redis.call('PEXPIRE', key, retention)
end
return #KEYS
"""
SCRIPT_HITS = 5_000

# Delete the lock only if it is still ours (it may have lapsed and been taken since).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Rebuilt:
    hits: int  # rows of cap_hits read
    members: int  # (set, send job) pairs written: a hit counts once per scope
    seconds: float


async def rebuild(pool: asyncpg.Pool, redis: RedisClient, chunk: int = CHUNK) -> Rebuilt:
    """Load every cap hit younger than the retention into Redis, then mark every slot tag
    rebuilt."""
    started = time.monotonic()
    cutoff = datetime.now(UTC) - timedelta(milliseconds=CAP_RETENTION_MS)
    after: tuple[int, str] = (-(2**63), "")
    hits, members = 0, 0
    while True:
        rows = await pool.fetch(_CHUNK_SQL, after[0], after[1], cutoff, chunk)
        if not rows:
            break
        members += await _load_chunk(redis, rows)
        hits += len(rows)
        after = (rows[-1]["send_job_id"], rows[-1]["contact_id"])
        if len(rows) < chunk:
            break
    done = datetime.now(UTC).isoformat()
    async with asyncio.timeout(TIMEOUT):
        await write_many(redis, dict.fromkeys(CAPS_REBUILT_KEYS, done))
    result = Rebuilt(hits, members, time.monotonic() - started)
    log.info(
        "frequency caps rebuilt from PostgreSQL",
        extra={"hits": hits, "members": members, "seconds": round(result.seconds, 3)},
    )
    return result


async def _load_chunk(redis: RedisClient, rows: list[asyncpg.Record]) -> int:
    """ZADD NX one chunk of rows with a script call per slot tag and ``SCRIPT_HITS`` (each
    call keeps Redis busy for a few milliseconds only), pipelined; return the ZADDs."""
    by_tag: dict[str, tuple[list[str], list[str | int]]] = {}
    for row in rows:
        contact_id = row["contact_id"]
        tag = tag_of(contact_id)
        keys, args = by_tag.setdefault(tag, ([], []))
        score, member = int(row["counted_at"].timestamp() * 1000), row["send_job_id"]
        for scope in row["scopes"]:
            keys.append(cap_key(contact_id, scope, tag))
            args += [score, member]
    calls = [
        (keys[start : start + SCRIPT_HITS],
         [CAP_RETENTION_MS, *args[2 * start : 2 * (start + SCRIPT_HITS)]])
        for keys, args in by_tag.values()
        for start in range(0, len(keys), SCRIPT_HITS)
    ]  # fmt: skip
    async with asyncio.timeout(TIMEOUT):
        await run_per_slot(redis, redis.register_script(_LOAD), calls)
        await redis.pexpire(CAPS_REBUILD_LOCK, LOCK_MS)
    return sum(len(keys) for keys, _ in calls)


async def ensure_loaded(
    pool: asyncpg.Pool, redis: RedisClient, tags: list[str] | None = None
) -> Rebuilt | None:
    """Rebuild unless Redis carries the markers of a rebuild for ``tags`` (default: every
    tag), or another process is doing one: then wait for its markers. Return what this
    process rebuilt, if anything."""
    markers = [caps_rebuilt(tag) for tag in tags or SLOT_TAGS]
    token = uuid.uuid4().hex
    while True:
        async with asyncio.timeout(TIMEOUT):
            if await redis.exists(*markers) == len(markers):
                return None
            locked = await redis.set(CAPS_REBUILD_LOCK, token, nx=True, px=LOCK_MS)
        if locked:
            try:
                return await rebuild(pool, redis)
            finally:
                async with asyncio.timeout(TIMEOUT):
                    await redis.eval(_RELEASE, 1, CAPS_REBUILD_LOCK, token)
        await asyncio.sleep(WAIT_SECONDS)
