"""Inbox storage housekeeping on the real PostgreSQL: the size cap evicts oldest first,
and expired entries are purged in bounded chunks."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime

import asyncpg

from services.delivery.repository import evict_oldest
from services.scheduler.purge import purge_expired

_batches = itertools.count(1)


async def _entries(
    pool: asyncpg.Pool, contact: str, count: int, expires: datetime | None
) -> list[int]:
    rows = await pool.fetch(
        """INSERT INTO inbox_entries (send_job_id, contact_id, content_id, kind, app_keys,
                                      payload, expires_at)
           SELECT -(g + $4 * 1000), $1, 'c', 'inbox', ARRAY['app'], '{}'::jsonb, $3::timestamptz
             FROM generate_series(1, $2) AS g
        RETURNING id""",
        contact, count, expires, next(_batches),
    )  # fmt: skip
    return sorted(r["id"] for r in rows)


async def test_the_inbox_cap_evicts_the_oldest_entries(pool: asyncpg.Pool) -> None:
    contact, other = f"cap-{uuid.uuid4().hex}", f"cap-{uuid.uuid4().hex}"
    ids = await _entries(pool, contact, 5, None)
    untouched = await _entries(pool, other, 5, None)
    assert await evict_oldest(pool, [contact], 3) == 2
    evicted = await pool.fetch(
        "SELECT id FROM inbox_entries WHERE contact_id = $1 AND evicted_at IS NOT NULL", contact
    )
    assert sorted(r["id"] for r in evicted) == ids[:2]
    assert await evict_oldest(pool, [contact], 3) == 0
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM inbox_entries WHERE id = ANY($1) AND evicted_at IS NULL",
            untouched,
        )
        == 5
    )


async def test_expired_entries_are_purged_in_chunks_and_live_ones_stay(pool: asyncpg.Pool) -> None:
    contact = f"purge-{uuid.uuid4().hex}"
    expired = await _entries(pool, contact, 7, datetime(2020, 1, 1, tzinfo=UTC))
    live = await _entries(pool, contact, 2, datetime(2099, 1, 1, tzinfo=UTC))
    forever = await _entries(pool, contact, 1, None)
    purged = await purge_expired(pool, grace_seconds=0, chunk=3)
    assert purged >= 7
    left = await pool.fetch("SELECT id FROM inbox_entries WHERE contact_id = $1", contact)
    assert sorted(r["id"] for r in left) == sorted(live + forever)
    assert not set(expired) & {r["id"] for r in left}
