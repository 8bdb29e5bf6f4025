"""Delta sync (services/sync/changes.py) on the real PostgreSQL: a device that applies every
delta holds exactly what the inbox lists (status=all), whatever happened in between —
reads, archive, pin, delete, eviction, expiry, the purge, paging — including a change
whose transaction was still running when the device read; a cursor older than the kept
tombstones is refused (the device refetches); a forged cursor is refused."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from services.delivery.repository import Content, Filing, NewEntry, evict_oldest, file_batch
from services.scheduler.purge import purge_expired, purge_tombstones
from services.sync import changes, inbox
from shared.db import create_pool, migrate
from tests.integration.test_inbox_partitions import _scanned
from tests.integration.test_migrations import empty_database  # noqa: F401  (fixture)

APP = "app"


class DeviceCopy:
    """A device's copy of the inbox, kept by applying every delta."""

    def __init__(self, pool: asyncpg.Pool, contact: str, limit: int = 100) -> None:
        self.pool, self.contact, self.limit = pool, contact, limit
        self.entries: dict[str, dict[str, Any]] = {}
        self.cursor: str | None = None
        self.pages = 0

    async def pull(self) -> None:
        more = True
        while more:
            answer = await changes.read(
                self.pool, self.contact, APP, changes.Cursor.parse(self.cursor), self.limit
            )
            for entry_id in answer["removed"]:
                self.entries.pop(entry_id, None)
            self.entries.update((view["id"], view) for view in answer["upserted"])
            self.cursor, more = answer["cursor"], answer["more"]
            self.pages += 1


async def listed(pool: asyncpg.Pool, contact: str) -> dict[str, dict[str, Any]]:
    """What GET /v1/inbox?status=all lists (every page)."""
    rows = await inbox.page(
        pool, contact, APP, status="all", category=None, after=None, limit=inbox.MAX_PAGE
    )
    return {view["id"]: view for view in await inbox.views(pool, rows)}


async def file(
    pool: asyncpg.Pool, contact: str, count: int = 1, *, expires_in: float | None = None,
    kind: str = "inbox", app: str = APP,
) -> list[int]:  # fmt: skip
    rows = await pool.fetch(
        """INSERT INTO inbox_entries (send_job_id, contact_id, content_id, kind, app_keys,
                                      payload, expires_at)
           SELECT -(nextval('inbox_entries_id_seq') + 10000000000), $1, 'c', $3, ARRAY[$4],
                  jsonb_build_object('title', 'Message ' || g),
                  now() + make_interval(secs => $5::float8)
             FROM generate_series(1, $2) AS g
        RETURNING id""",
        contact, count, kind, app, expires_in,
    )  # fmt: skip
    return sorted(r["id"] for r in rows)


async def until_expired(pool: asyncpg.Pool, entry_id: int) -> None:
    """Wait for the database's clock to pass the entry's expiry."""
    for _ in range(100):
        if await pool.fetchval(
            "SELECT expires_at <= now() FROM inbox_entries WHERE id = $1", entry_id
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"entry {entry_id} did not expire")


async def test_devices_applying_every_delta_hold_what_the_inbox_lists(pool: asyncpg.Pool) -> None:
    contact = f"delta-{uuid.uuid4().hex}"
    one, two, three, four, five = await file(pool, contact, 5)
    await file(pool, contact, kind="inapp")  # neither of them is in the App Inbox
    await file(pool, contact, app="other-app")
    early, late = DeviceCopy(pool, contact), DeviceCopy(pool, contact)
    await early.pull()
    await late.pull()
    assert early.entries == late.entries == await listed(pool, contact)
    assert len(early.entries) == 5

    async def step() -> None:
        await early.pull()
        assert early.entries == await listed(pool, contact)

    for entry_id, action in [(one, "read"), (two, "archive"), (three, "pin"), (four, "delete")]:
        assert await inbox.act(pool, contact, APP, entry_id, action)  # type: ignore[arg-type]
        await step()
    await inbox.act(pool, contact, APP, one, "unread")
    newer = await file(pool, contact, 2)
    await step()
    assert await evict_oldest(pool, [contact], 6) == 1  # 7 of both apps: the oldest goes
    await step()
    assert str(one) not in early.entries and str(newer[1]) in early.entries
    [expiring] = await file(pool, contact, expires_in=0.5)
    [purged] = await file(pool, contact, expires_in=0.5)
    await step()
    assert {str(expiring), str(purged)} <= early.entries.keys()
    await until_expired(pool, purged)
    # the row is gone: only its tombstone can tell a device that held it
    assert await purge_expired(pool, grace_seconds=0, chunk=1000, replay_window_seconds=0) >= 2
    assert await pool.fetchval(
        "SELECT count(*) FROM inbox_tombstones WHERE contact_id = $1", contact
    ) == 2  # fmt: skip
    await step()
    assert str(purged) not in early.entries and str(five) in early.entries
    await late.pull()  # everything at once, from the first cursor
    assert late.entries == early.entries


async def test_an_entry_expiring_between_two_reads_is_removed(pool: asyncpg.Pool) -> None:
    contact = f"delta-{uuid.uuid4().hex}"
    [kept] = await file(pool, contact)
    [expiring] = await file(pool, contact, expires_in=0.5)
    device = DeviceCopy(pool, contact)
    await device.pull()
    assert device.entries.keys() == {str(kept), str(expiring)}
    await until_expired(pool, expiring)
    await device.pull()  # no row changed: the cursor's time tells
    assert device.entries.keys() == {str(kept)} == (await listed(pool, contact)).keys()


async def test_a_change_committed_after_a_read_that_began_before_it_is_in_the_next_delta(
    pool: asyncpg.Pool,
) -> None:
    contact = f"delta-{uuid.uuid4().hex}"
    [first] = await file(pool, contact)
    device = DeviceCopy(pool, contact)
    async with pool.acquire() as conn:
        writing = conn.transaction()
        await writing.start()
        await conn.execute("UPDATE inbox_entries SET read_at = now() WHERE id = $1", first)
        added = await conn.fetchval(
            """INSERT INTO inbox_entries (send_job_id, contact_id, content_id, kind, app_keys,
                                          payload)
               VALUES (-nextval('inbox_entries_id_seq') - 20000000000, $1, 'c', 'inbox',
                       ARRAY[$2], '{"title": "late"}') RETURNING id""",
            contact, APP,
        )  # fmt: skip
        await device.pull()  # reads before the writer commits: sees neither change
        assert device.entries[str(first)]["read"] is False
        assert str(added) not in device.entries
        await writing.commit()
    await device.pull()
    assert device.entries[str(first)]["read"] is True and str(added) in device.entries
    assert device.entries == await listed(pool, contact)


async def test_pages_give_the_whole_inbox_and_what_changed_while_paging_comes_next(
    pool: asyncpg.Pool,
) -> None:
    contact = f"delta-{uuid.uuid4().hex}"
    ids = await file(pool, contact, 7)
    answer = await changes.read(pool, contact, APP, changes.Cursor.parse(None), 3)
    assert answer["more"] is True
    assert [v["id"] for v in answer["upserted"]] == [str(i) for i in ids[:-4:-1]]
    # between pages: the newest (already sent) is read, the oldest (not yet) deleted
    await inbox.act(pool, contact, APP, ids[-1], "read")
    await inbox.act(pool, contact, APP, ids[0], "delete")
    device = DeviceCopy(pool, contact, limit=3)
    device.entries = {v["id"]: v for v in answer["upserted"]}
    device.cursor = answer["cursor"]
    await device.pull()
    assert device.pages == 1  # the 3 older entries left
    assert len(device.entries) == 6  # the deleted one never sent
    assert device.entries[str(ids[-1])]["read"] is False  # as the first page had it
    await device.pull()
    assert device.entries == await listed(pool, contact)
    assert device.entries[str(ids[-1])]["read"] is True


async def test_a_repeated_action_leaves_the_entry_where_it_was(pool: asyncpg.Pool) -> None:
    contact = f"delta-{uuid.uuid4().hex}"
    [entry] = await file(pool, contact)

    async def position() -> str:
        return str(await pool.fetchval("SELECT change_xid FROM inbox_entries WHERE id = $1", entry))

    filed = await position()
    await inbox.act(pool, contact, APP, entry, "pin")
    pinned = await position()
    assert int(pinned) > int(filed)
    await inbox.act(pool, contact, APP, entry, "pin")
    assert await position() == pinned


async def test_a_batch_filed_with_copy_takes_its_transaction(pool: asyncpg.Pool) -> None:
    contacts = [f"delta-copy-{uuid.uuid4().hex}" for _ in range(20)]
    content = Content("c", "inbox", {}, {}, {}, None, [], None)
    entries = [NewEntry(c, {"title": "t"}, None, 1, None) for c in contacts]
    job = -int(uuid.uuid4().int % 10**12) - 30_000_000_000
    assert await file_batch(pool, Filing(job, 1, content, [APP], False, None, entries))
    positions = await pool.fetch(
        "SELECT DISTINCT change_xid::text FROM inbox_entries WHERE send_job_id = $1", job
    )
    assert len(positions) == 1 and positions[0][0] is not None


@pytest.mark.parametrize(
    "cursor",
    ["abc", "1.", "1.2.3", "1.2.3.4", "-1.5", "1 .2", "9" * 20 + ".1", "1.2.3.4.5.6"],
)
def test_a_malformed_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(changes.BadCursor):
        changes.Cursor.parse(cursor)


async def test_a_cursor_from_the_future_is_refused(pool: asyncpg.Pool) -> None:
    contact = f"delta-{uuid.uuid4().hex}"
    now = await changes.read(pool, contact, APP, changes.Cursor.parse(None), 10)
    xid, ms = now["cursor"].split(".")
    for forged in (f"{int(xid) + 10**12}.{ms}", f"{xid}.{int(ms) + 86_400_000}"):
        with pytest.raises(changes.BadCursor):
            await changes.read(pool, contact, APP, changes.Cursor.parse(forged), 10)


async def test_the_delta_reads_the_contacts_partitions_only(pool: asyncpg.Pool) -> None:
    contact = f"delta-{uuid.uuid4().hex}"
    await file(pool, contact, 2)
    since = (await changes.read(pool, contact, APP, changes.Cursor.parse(None), 10))["cursor"]
    xid, ms = since.split(".")
    async with pool.acquire() as conn:
        await conn.execute("SET plan_cache_mode = force_generic_plan")  # as sync's pool
        try:
            read = await _scanned(conn, changes.CHANGES, (contact, APP, xid, int(ms), None, 11))
        finally:
            await conn.execute("RESET plan_cache_mode")
    inbox_parts = {r for r in read if r.startswith("inbox_entries_p")}
    tombstone_parts = {r for r in read if r.startswith("inbox_tombstones_p")}
    assert len(inbox_parts) == 1 and len(tombstone_parts) == 1
    assert read - inbox_parts - tombstone_parts <= {"contents", "inbox_tombstones_horizon"}


async def test_a_cursor_older_than_the_kept_tombstones_is_refused(
    empty_database: str,  # noqa: F811
) -> None:
    await migrate(empty_database)
    pool = await create_pool(empty_database, max_size=2)
    try:
        [entry] = await file(pool, "c", expires_in=0.5)
        device = DeviceCopy(pool, "c")
        await device.pull()
        await until_expired(pool, entry)
        await purge_expired(pool, grace_seconds=0, chunk=10, replay_window_seconds=0)
        old = DeviceCopy(pool, "c")
        old.entries, old.cursor = dict(device.entries), device.cursor
        await device.pull()  # the tombstone is there: the device hears of the removal
        assert device.entries == {}
        assert await purge_tombstones(pool, chunk=10, kept_seconds=0) == 1
        with pytest.raises(changes.CursorTooOld):  # it would never hear of it now
            await old.pull()
        await device.pull()  # heard of it before: goes on
        fresh = DeviceCopy(pool, "c")  # refetching works, and so does its cursor
        await fresh.pull()
        await file(pool, "c")
        await fresh.pull()
        assert fresh.entries == await listed(pool, "c") and len(fresh.entries) == 1
    finally:
        await pool.close()
