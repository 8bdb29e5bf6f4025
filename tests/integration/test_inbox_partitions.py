"""The partitioned inbox (migration 0014), each test in a throwaway database of the real
PostgreSQL: a populated 0013 inbox migrates keeping every entry, its id and its keys;
sync's statements read only the partition of the contact they name; the purge empties
every partition of its expired entries; the inbox cap evicts in every partition."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from asyncpg.pool import PoolConnectionProxy

from services.delivery.repository import Content, Filing, NewEntry, evict_oldest, file_batch
from services.scheduler.purge import purge_expired
from services.sync import events, inbox
from services.sync.repository import PHONE_HOME
from shared.db import MIGRATIONS_DIR, create_pool, migrate
from tests.integration.test_migrations import empty_database  # noqa: F401  (fixture)

PARTITIONS = 16

# rows of every kind a 0013 inbox holds: in-app and App Inbox, rendered or by value,
# viewed, read, clicked, dismissed, deleted, evicted, expired or not, test sends
_POPULATE = """
INSERT INTO inbox_entries (send_job_id, contact_id, content_id, kind, app_keys, payload,
                           merge_values, platforms, max_views, views, delivered_at,
                           expires_at, read_at, clicked_at, deleted_at, is_test,
                           dismissed_at, evicted_at)
SELECT g, 'contact-' || (g % 150), 'content-' || (g % 7),
       CASE WHEN g % 2 = 0 THEN 'inapp' ELSE 'inbox' END, ARRAY['app-a', 'app-' || (g % 3)],
       CASE WHEN g % 3 = 0 THEN jsonb_build_object('title', 'Hi ' || g, 'n', g) END,
       CASE WHEN g % 3 <> 0 THEN jsonb_build_object('first_name', 'Ann ' || g) END,
       CASE WHEN g % 2 = 0 AND g % 3 <> 0 THEN g % 8 END, 1 + g % 3, g % 4,
       timestamptz '2026-01-01' + g * interval '1 minute',
       CASE g % 3 WHEN 0 THEN NULL WHEN 1 THEN timestamptz '2020-01-01'
                  ELSE timestamptz '2099-01-01' END,
       CASE WHEN g % 5 = 0 THEN timestamptz '2026-02-01' END,
       CASE WHEN g % 13 = 0 THEN timestamptz '2026-02-02' END,
       CASE WHEN g % 7 = 0 THEN timestamptz '2026-02-03' END, g % 19 = 0,
       CASE WHEN g % 17 = 0 THEN timestamptz '2026-02-04' END,
       CASE WHEN g % 11 = 0 THEN timestamptz '2026-02-05' END
  FROM generate_series(1, $1) AS g
"""


def _migrations_up_to(directory: Path, last: int) -> Path:
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if int(path.name[:4]) <= last:
            shutil.copy(path, directory / path.name)
    return directory


@pytest.fixture
async def migrated(empty_database: str) -> AsyncIterator[asyncpg.Pool]:  # noqa: F811
    """A pool on a throwaway database with every migration applied."""
    await migrate(empty_database)
    pool = await create_pool(empty_database, max_size=2)
    yield pool
    await pool.close()


async def test_a_populated_inbox_migrates_to_partitions_keeping_every_entry(
    empty_database: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    await migrate(empty_database, _migrations_up_to(tmp_path, 13))
    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute(_POPULATE, 600)
        # the newest entries gone: the identity must continue after them, not after the max
        await conn.execute("DELETE FROM inbox_entries WHERE id > 597")
        before = [dict(r) for r in await conn.fetch("SELECT * FROM inbox_entries ORDER BY id")]

        assert await migrate(empty_database, _migrations_up_to(tmp_path, 14)) == [
            "0014_partitioned_inbox.sql"
        ]

        assert [dict(r) for r in await conn.fetch("SELECT * FROM inbox_entries ORDER BY id")] == (
            before
        )
        await migrate(empty_database)  # and every later migration applies on top
        added = await conn.fetchval(
            """INSERT INTO inbox_entries (send_job_id, contact_id, content_id, kind, app_keys)
               VALUES (-1, 'contact-1', 'c', 'inbox', '{a}') RETURNING id"""
        )
        assert added == 601
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                """INSERT INTO inbox_entries (send_job_id, contact_id, content_id, kind, app_keys)
                   VALUES (5, 'contact-5', 'c', 'inbox', '{a}')"""
            )
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                """INSERT INTO inbox_entries (send_job_id, contact_id, content_id, kind, app_keys)
                   VALUES (-2, 'contact-1', 'c', 'push', '{a}')"""
            )
        await _assert_partitioned_by_contact(conn)
    finally:
        await conn.close()


async def _assert_partitioned_by_contact(conn: asyncpg.Connection) -> None:
    """16 hash partitions, every row in the one its contact hashes to, the keys in place."""
    placed = await conn.fetch(
        """SELECT right(tableoid::regclass::text, 2)::int AS remainder, contact_id,
                  satisfies_hash_partition('inbox_entries'::regclass, $1,
                      right(tableoid::regclass::text, 2)::int, contact_id) AS hashes_here
             FROM inbox_entries"""
        , PARTITIONS,
    )  # fmt: skip
    assert all(r["hashes_here"] for r in placed)
    assert {r["remainder"] for r in placed} == set(range(PARTITIONS))
    indexes = {
        r["indexname"]: r["indexdef"].split(" USING ")[1]
        for r in await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'inbox_entries'"
        )
    }
    assert indexes == {
        "inbox_entries_pkey": "btree (contact_id, id)",
        "inbox_entries_send_job_id_contact_id_key": "btree (send_job_id, contact_id)",
        "inbox_entries_expiry": "btree (expires_at) WHERE (expires_at IS NOT NULL)",
    }


CONTENT = Content("c", "inbox", {}, {}, {}, None, [], None)


async def test_a_batch_filed_again_into_the_partitions_adds_nothing(
    migrated: asyncpg.Pool,
) -> None:
    contacts = [f"copy-{n}" for n in range(300)]  # in every partition
    entries = [NewEntry(c, None, {"first_name": c}, 1, None) for c in contacts]
    filing = Filing(7, 1, CONTENT, ["a"], False, None, entries)
    assert await file_batch(migrated, filing) == set(contacts)  # COPY through the parent
    assert await file_batch(migrated, filing) == set()  # COPY refused, then ON CONFLICT
    rows = await migrated.fetch("SELECT contact_id, merge_values FROM inbox_entries")
    assert sorted((r["contact_id"], r["merge_values"]) for r in rows) == sorted(
        (c, {"first_name": c}) for c in contacts
    )


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, list):
        return "'{" + ",".join(str(v) for v in value) + "}'"
    if isinstance(value, str | datetime):
        return "'" + str(value).replace("'", "''") + "'"
    return str(value)


async def _scanned(conn: PoolConnectionProxy, sql: str, args: tuple[Any, ...]) -> set[str]:
    """The partitions a run of ``sql`` read, from EXPLAIN ANALYZE of a prepared statement
    (in a transaction rolled back)."""
    name = f"q_{uuid.uuid4().hex[:8]}"
    await conn.execute(f"PREPARE {name} AS {sql}")
    try:
        async with conn.transaction():
            plan = await conn.fetchval(
                f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {name}"
                f"({', '.join(_literal(a) for a in args)})"
            )
            raise _Rollback(plan)
    except _Rollback as done:
        return set(_relations(done.plan[0]["Plan"]))
    finally:
        await conn.execute(f"DEALLOCATE {name}")


class _Rollback(Exception):
    def __init__(self, plan: Any) -> None:
        self.plan = plan


def _relations(node: dict[str, Any]) -> list[str]:
    scan = "Scan" in node["Node Type"] and "Relation Name" in node  # not "Update on"
    found = [node["Relation Name"]] if scan else []
    for child in node.get("Plans", []):
        found += _relations(child)
    return found


@pytest.mark.parametrize("plan_mode", ["force_custom_plan", "force_generic_plan"])
async def test_sync_reads_and_updates_only_the_partition_of_the_contact(
    migrated: asyncpg.Pool, plan_mode: str
) -> None:
    await migrated.execute(_POPULATE, 600)
    contact = "contact-42"
    own = await migrated.fetch(
        "SELECT id, tableoid::regclass::text AS part FROM inbox_entries WHERE contact_id = $1",
        contact,
    )
    ids, at = [r["id"] for r in own], datetime(2026, 3, 1, tzinfo=UTC)
    statements = {
        "phone home": (PHONE_HOME, (contact, "app-a", "gcm", 100, 1)),
        **{
            f"inbox page {status}": (sql, (contact, "app-a", None, None, None, 20))
            for status, sql in inbox.PAGE.items()
        },
        "unread counts": (inbox.UNREAD_COUNTS, (contact, "app-a")),
        **{f"{action} one": (sql, (contact, "app-a", ids[0])) for action, sql in inbox.ACT.items()},
        **{f"{action} all": (sql, (contact, "app-a", None)) for action, sql in inbox.BULK.items()},
        "events' entries": (events.OWNED, (ids, contact)),
        "count a view": (events.COUNT_VIEW, (ids[0], contact)),
        **{
            f"stamp {kind}": (sql, (contact, ids[:2], [at.isoformat()] * 2))
            for kind, sql in events.STAMP.items()
        },
    }
    async with migrated.acquire() as conn:
        await conn.execute(f"SET plan_cache_mode = {plan_mode}")
        try:
            for what, (sql, args) in statements.items():
                scanned = await _scanned(conn, sql, args)
                assert scanned - {"contents"} == {own[0]["part"]}, what
            # what naming the contact spares: an entry looked up by id alone
            by_id = "SELECT * FROM inbox_entries WHERE id = $1"
            assert len(await _scanned(conn, by_id, (ids[0],))) == PARTITIONS
        finally:
            await conn.execute("RESET plan_cache_mode")


async def test_the_purge_empties_every_partition_of_its_expired_entries(
    migrated: asyncpg.Pool,
) -> None:
    await migrated.execute(_POPULATE, 600)
    await migrated.execute("UPDATE inbox_entries SET delivered_at = '2019-12-01'")
    expired = await migrated.fetchval("SELECT count(*) FROM inbox_entries WHERE expires_at < now()")
    kept = await migrated.fetch(
        "SELECT id FROM inbox_entries WHERE expires_at IS NULL OR expires_at > now() ORDER BY id"
    )
    assert await purge_expired(migrated, grace_seconds=0, chunk=7) == expired == 200
    assert await migrated.fetch("SELECT id FROM inbox_entries ORDER BY id") == kept


async def test_the_inbox_cap_evicts_the_oldest_in_every_partition(
    migrated: asyncpg.Pool,
) -> None:
    contacts = [f"evict-{n}" for n in range(100)]
    for job in range(1, 5):  # four App Inbox entries each, oldest first
        entries = [NewEntry(c, None, None, 1, None) for c in contacts]
        await file_batch(migrated, Filing(job, 1, CONTENT, ["a"], False, None, entries))
    assert await evict_oldest(migrated, contacts, 3) == 100
    evicted = await migrated.fetch(
        "SELECT DISTINCT send_job_id FROM inbox_entries WHERE evicted_at IS NOT NULL"
    )
    assert [r["send_job_id"] for r in evicted] == [1]
    assert await evict_oldest(migrated, contacts, 3) == 0
