"""Expired inbox entries leave storage: a periodic job deletes them in bounded chunks
(each chunk its own short statement, so it never holds long locks or a huge
transaction). Sync never returns an expired entry whether or not it was purged yet."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from services.scheduler import metrics

log = logging.getLogger(__name__)

_PURGE_CHUNK = """
DELETE FROM inbox_entries
 WHERE id IN (SELECT id FROM inbox_entries
               WHERE expires_at < now() - make_interval(secs => $1)
               LIMIT $2)
"""


async def purge_expired(pool: asyncpg.Pool, grace_seconds: float, chunk: int) -> int:
    """Delete every entry expired more than ``grace_seconds`` ago; return how many."""
    total = 0
    while True:
        result = await pool.execute(_PURGE_CHUNK, float(grace_seconds), chunk)
        deleted = int(result.split()[-1])
        total += deleted
        metrics.PURGED.inc(deleted)
        if deleted < chunk:
            break
        await asyncio.sleep(0)  # let the scheduler's own work interleave
    if total:
        log.info("expired inbox entries purged", extra={"purged": total})
    return total


async def purge_periodically(
    pool: asyncpg.Pool, grace_seconds: float, chunk: int, interval: float, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            await purge_expired(pool, grace_seconds, chunk)
        except (OSError, asyncpg.PostgresError):
            log.exception("purge failed; will try again")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
