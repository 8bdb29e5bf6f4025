"""Storage housekeeping: a periodic job deletes, in bounded chunks (each chunk its own
short statement, so it never holds long locks or a huge transaction):

- expired inbox entries, once expired for ``grace_seconds`` AND delivered longer ago than
  a SendBatch can be replayed (``SENDS_REPLAY_WINDOW_MS`` + a margin). The row is what
  makes a replayed batch a ``duplicate`` (UNIQUE (send_job_id, contact_id)), so it stays
  while the batch may still be on pigeonhole.sends. A filed entry always expires after it
  was delivered, so the expiry index alone finds the rows. Evicted and deleted entries
  are only marked (never deleted before they expire), so they stay duplicates too.
  ``inbox_entries`` is hash-partitioned by contact (migration 0014): the purge goes
  partition by partition, each chunk a statement on one partition (its own expiry index,
  its rows addressed by ``ctid``), so no statement reads more than one partition and
  autovacuum, which works per partition, finds each one's dead rows on its own.
  Each App Inbox entry deleted leaves a tombstone (``inbox_tombstones``, migration 0017),
  written by the deleting statement itself, so delta sync (services/sync/changes.py) can
  tell a device whose cursor predates the deletion to drop it.
- tombstones older than ``tombstones_kept_seconds`` (30 days), in the statement that raises
  ``inbox_tombstones_horizon`` to the newest transaction purged: a delta cursor at or
  below it is answered 410 (refetch), since it may have missed a removal.
- frequency-cap hits (``cap_hits``) older than the longest cap window + a margin.
- personalization failures (``delivery_failures``) older than 30 days: what an operator
  reads to answer "why was this recipient skipped" for a recent send.

Sync never returns an expired entry whether or not it was purged yet."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from services.scheduler import metrics
from shared.failures import dependency_down
from shared.redis_keys import CAP_RETENTION_MS
from shared.topics import SENDS_REPLAY_WINDOW_MS

log = logging.getLogger(__name__)

MARGIN_SECONDS = 86_400.0
REPLAY_WINDOW_SECONDS = SENDS_REPLAY_WINDOW_MS / 1000 + MARGIN_SECONDS
CAP_HITS_KEPT_SECONDS = CAP_RETENTION_MS / 1000 + MARGIN_SECONDS
DELIVERY_FAILURES_KEPT_SECONDS = 30 * 86_400.0
# A device offline longer than this since its last delta sync refetches its inbox
# (PIGEONHOLE_TOMBSTONES_KEPT_SECONDS for the scheduler).
TOMBSTONES_KEPT_SECONDS = 30 * 86_400.0

# The leaf tables of a partitioned table (inbox_entries since migration 0014)
_PARTITIONS = """
SELECT relid::regclass::text FROM pg_partition_tree($1::regclass)
 WHERE isleaf ORDER BY relid::regclass::text
"""

# Every chunk statement answers how many rows it deleted.
_PURGE_PARTITION_CHUNK = """
WITH gone AS (
    DELETE FROM {partition}
     WHERE ctid = ANY(ARRAY(
           SELECT ctid FROM {partition}
            WHERE expires_at < now() - make_interval(secs => greatest($1::float8, $3::float8))
              AND delivered_at < now() - make_interval(secs => $3)
            LIMIT $2))
    RETURNING contact_id, id, kind, app_keys
), tombstones AS (
    INSERT INTO inbox_tombstones (contact_id, entry_id, app_keys)
    SELECT contact_id, id, app_keys FROM gone WHERE kind = 'inbox'
    ON CONFLICT DO NOTHING
)
SELECT count(*) FROM gone
"""

_PURGE_TOMBSTONES_CHUNK = """
WITH gone AS (
    DELETE FROM {partition}
     WHERE ctid = ANY(ARRAY(SELECT ctid FROM {partition}
                             WHERE removed_at < now() - make_interval(secs => $1)
                             LIMIT $2))
    RETURNING change_xid
), horizon AS (
    UPDATE inbox_tombstones_horizon
       SET purged_xid = greatest(purged_xid, (SELECT max(change_xid) FROM gone))
     WHERE EXISTS (SELECT FROM gone)
)
SELECT count(*) FROM gone
"""


def _purge_older_chunk(table: str, stamp: str) -> str:
    """One chunk of ``table``'s rows whose ``stamp`` is older than $1 seconds (at most $2),
    deleted by ctid; answers how many went. Names come from this module, never input."""
    return f"""
WITH gone AS (
    DELETE FROM {table}
     WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table}
                             WHERE {stamp} < now() - make_interval(secs => $1)
                             LIMIT $2))
    RETURNING 1
)
SELECT count(*) FROM gone
"""


_PURGE_CAP_HITS_CHUNK = _purge_older_chunk("cap_hits", "counted_at")
_PURGE_FAILURES_CHUNK = _purge_older_chunk("delivery_failures", "at")


async def purge_expired(
    pool: asyncpg.Pool,
    grace_seconds: float,
    chunk: int,
    replay_window_seconds: float = REPLAY_WINDOW_SECONDS,
) -> int:
    """Delete every entry expired more than ``grace_seconds`` ago and delivered more than
    ``replay_window_seconds`` ago; return how many."""
    total = 0
    for partition in await _partitions(pool, "inbox_entries"):
        sql = _PURGE_PARTITION_CHUNK.format(partition=partition)
        total += await _in_chunks(
            pool, sql, float(grace_seconds), chunk, float(replay_window_seconds), count=True
        )
    if total:
        log.info("expired inbox entries purged", extra={"purged": total})
    return total


async def purge_tombstones(
    pool: asyncpg.Pool, chunk: int, kept_seconds: float = TOMBSTONES_KEPT_SECONDS
) -> int:
    """Delete the tombstones older than ``kept_seconds``, raising the horizon below which
    delta cursors are too old; return how many."""
    total = 0
    for partition in await _partitions(pool, "inbox_tombstones"):
        sql = _PURGE_TOMBSTONES_CHUNK.format(partition=partition)
        total += await _in_chunks(pool, sql, float(kept_seconds), chunk)
    if total:
        log.info("old inbox tombstones purged", extra={"purged": total})
    return total


async def _partitions(pool: asyncpg.Pool, table: str) -> list[str]:
    """The leaf tables of ``table`` (the table itself if it is not partitioned), as regclass
    text: quoted where a name needs it, so it can be put into a statement (the names come
    from the catalog, never from input)."""
    return [r[0] for r in await pool.fetch(_PARTITIONS, table)] or [table]


async def purge_cap_hits(
    pool: asyncpg.Pool, chunk: int, kept_seconds: float = CAP_HITS_KEPT_SECONDS
) -> int:
    """Delete the cap hits no cap window can count any more; return how many."""
    total = await _in_chunks(pool, _PURGE_CAP_HITS_CHUNK, float(kept_seconds), chunk)
    if total:
        log.info("old frequency-cap hits purged", extra={"purged": total})
    return total


async def purge_delivery_failures(
    pool: asyncpg.Pool, chunk: int, kept_seconds: float = DELIVERY_FAILURES_KEPT_SECONDS
) -> int:
    """Delete the personalization failures older than ``kept_seconds``; return how many."""
    return await _in_chunks(pool, _PURGE_FAILURES_CHUNK, float(kept_seconds), chunk)


async def _in_chunks(
    pool: asyncpg.Pool, sql: str, first: float, chunk: int, *rest: float, count: bool = False
) -> int:
    total = 0
    while True:
        deleted = int(await pool.fetchval(sql, first, chunk, *rest))
        total += deleted
        if count:  # the metric counts inbox entries only
            metrics.PURGED.inc(deleted)
        if deleted < chunk:
            return total
        await asyncio.sleep(0)  # let the scheduler's own work interleave


async def purge_periodically(
    pool: asyncpg.Pool,
    grace_seconds: float,
    chunk: int,
    interval: float,
    stop: asyncio.Event,
    tombstones_kept_seconds: float = TOMBSTONES_KEPT_SECONDS,
) -> None:
    while not stop.is_set():
        try:
            await purge_expired(pool, grace_seconds, chunk)
            await purge_cap_hits(pool, chunk)
            await purge_delivery_failures(pool, chunk)
            await purge_tombstones(pool, chunk, tombstones_kept_seconds)
        except Exception as exc:  # the next interval tries again; the task never ends
            dependency = dependency_down(exc)
            if dependency is None:
                log.exception("purge failed; will try again")
            else:
                log.warning("purge paused: a dependency is down", extra={"dependency": dependency})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
