"""Inbox storage housekeeping on the real PostgreSQL: the size cap evicts oldest first,
and expired entries are purged in bounded chunks, but only once their batch can no
longer be replayed: until then their rows keep a replay a duplicate."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime

import asyncpg

from services.delivery.repository import Content, Filing, NewEntry, evict_oldest, file_batch
from services.scheduler.purge import (
    REPLAY_WINDOW_SECONDS,
    purge_delivery_failures,
    purge_expired,
)
from shared.topics import SENDS

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


async def test_expired_entries_are_purged_in_chunks_once_no_replay_can_return(
    pool: asyncpg.Pool,
) -> None:
    contact = f"purge-{uuid.uuid4().hex}"
    expired = await _entries(pool, contact, 7, datetime(2020, 1, 1, tzinfo=UTC))
    await pool.execute(
        "UPDATE inbox_entries SET delivered_at = $2 WHERE id = ANY($1)",
        expired, datetime(2019, 12, 1, tzinfo=UTC),
    )  # fmt: skip
    replayable = await _entries(pool, contact, 2, datetime(2020, 1, 1, tzinfo=UTC))
    live = await _entries(pool, contact, 2, datetime(2099, 1, 1, tzinfo=UTC))
    forever = await _entries(pool, contact, 1, None)
    purged = await purge_expired(pool, grace_seconds=0, chunk=3)
    assert purged >= 7
    left = await pool.fetch("SELECT id FROM inbox_entries WHERE contact_id = $1", contact)
    assert sorted(r["id"] for r in left) == sorted(replayable + live + forever)


def test_the_replay_window_outlasts_the_sends_topic() -> None:
    config = dict(SENDS.config)
    kept_ms = int(config["retention.ms"]) + int(config["segment.ms"])
    assert kept_ms < REPLAY_WINDOW_SECONDS * 1000


CONTENT = Content("c", "inbox", {}, {}, {}, None, [], None)


def _filing(job: int, seq: int, *contacts: str) -> Filing:
    entries = [NewEntry(c, None, {"first_name": c[-4:]}, 1, None) for c in contacts]
    return Filing(job, seq, CONTENT, ["a"], False, None, entries)


async def test_an_evicted_entry_is_still_a_duplicate_when_its_batch_comes_again(
    pool: asyncpg.Pool,
) -> None:
    contact, job = f"evict-{uuid.uuid4().hex}", -(10**15) - next(_batches)
    assert await file_batch(pool, _filing(job, 1, contact)) == {contact}
    assert await evict_oldest(pool, [contact], 0) == 1
    assert await file_batch(pool, _filing(job, 1, contact)) == set()


async def test_a_batch_is_filed_once_whichever_path_files_it(pool: asyncpg.Pool) -> None:
    job = -(10**15) - uuid.uuid4().int % 10**12
    a, b, c = (f"once-{n}-{uuid.uuid4().hex}" for n in "abc")
    assert await file_batch(pool, _filing(job, 1, a, b)) == {a, b}  # new batch: COPY
    assert await file_batch(pool, _filing(job, 1, a, b)) == set()  # seen before: row by row
    copied = await pool.fetchval("SELECT count(*) FROM inbox_entries WHERE send_job_id = $1", job)
    assert copied == 2  # the failed COPY of the repeat left nothing behind
    # a new batch of the job naming a contact an earlier batch filed (cut differently
    # after a resume): the COPY meets that entry and the batch goes row by row instead
    assert await file_batch(pool, _filing(job, 2, b, c)) == {c}
    rows = await pool.fetch(
        "SELECT contact_id, merge_values FROM inbox_entries WHERE send_job_id = $1", job
    )
    assert sorted((r["contact_id"], r["merge_values"]) for r in rows) == sorted(
        (x, {"first_name": x[-4:]}) for x in (a, b, c)
    )


async def test_personalization_failures_are_kept_30_days_then_purged(pool: asyncpg.Pool) -> None:
    job = -int(uuid.uuid4().int % 10**12) - 1
    await pool.execute(
        """INSERT INTO delivery_failures (send_job_id, contact_id, field, error, at)
           VALUES ($1, 'old', 'f', 'e', now() - interval '31 days'),
                  ($1, 'recent', 'f', 'e', now() - interval '29 days')""",
        job,
    )
    assert await purge_delivery_failures(pool, chunk=1) >= 1
    left = await pool.fetch("SELECT contact_id FROM delivery_failures WHERE send_job_id = $1", job)
    assert [r["contact_id"] for r in left] == ["recent"]
    await pool.execute("DELETE FROM delivery_failures WHERE send_job_id = $1", job)
