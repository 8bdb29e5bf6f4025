"""Device engagement: view, click, dismiss, read, delete, idempotent by ``eventId``.

One transaction per request: the events are recorded (a known event id is ignored) and
their effects applied set-based. A view counts toward maxViews atomically — the update is
guarded by ``views < max_views`` under the row lock, so two devices of one contact viewing
at once cannot exceed it. A click removes an in-app message whatever views are left; read
and delete stamp the entry; dismiss is recorded for statistics.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

EventType = Literal["view", "click", "dismiss", "read", "delete"]


class DeviceEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    eventId: str = Field(min_length=8, max_length=100)
    messageId: str = Field(pattern=r"^[0-9]{1,18}$")
    type: EventType
    at: AwareDatetime


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[DeviceEvent] = Field(min_length=1, max_length=100)


@dataclass(frozen=True)
class Applied:
    event_id: str
    message_id: str
    type: str
    at: datetime
    job_id: int
    content_id: str


class UnknownMessages(Exception):
    """Some events name messages this contact does not have (or no longer has)."""

    def __init__(self, message_ids: list[str]) -> None:
        super().__init__(f"unknown message id(s): {', '.join(message_ids)}")
        self.message_ids = message_ids


_INSERT = """
INSERT INTO engagement_events (event_id, entry_id, contact_id, type, counted, at)
SELECT t.event_id, t.entry_id, $1, t.type, true, t.at
  FROM unnest($2::text[], $3::bigint[], $4::text[], $5::timestamptz[])
       AS t(event_id, entry_id, type, at)
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id, entry_id, type, at
"""

# Every statement on inbox_entries names the contact, so it reads the one partition the
# contact hashes to (tests/integration/test_inbox_partitions.py checks the plans).
OWNED = """
SELECT id, send_job_id, content_id FROM inbox_entries
 WHERE id = ANY($1) AND contact_id = $2 FOR UPDATE
"""

# One counted view per new view event, never past maxViews.
COUNT_VIEW = """
UPDATE inbox_entries SET views = views + 1
 WHERE id = $1 AND contact_id = $2 AND views < max_views
RETURNING id
"""

# the stamped column of each event type, and its statement (columns from here, never input)
_STAMP = {
    "click": "clicked_at",
    "dismiss": "dismissed_at",
    "read": "read_at",
    "delete": "deleted_at",
}
STAMP = {
    kind: f"""UPDATE inbox_entries e SET {column} = coalesce(e.{column}, t.at)
                FROM unnest($2::bigint[], $3::timestamptz[]) AS t(id, at)
               WHERE e.id = t.id AND e.contact_id = $1"""
    for kind, column in _STAMP.items()
}


async def record(
    pool: asyncpg.Pool,
    contact_id: str,
    events: list[DeviceEvent],
    publish: Callable[[list[Applied]], Awaitable[None]],
) -> list[Applied]:
    """Apply a batch for one contact; return the events that were new. Raises
    UnknownMessages, and applies nothing, if any event names a message not theirs.

    ``publish`` runs before the commit: if it fails nothing is recorded and the device's
    retry applies and publishes again; if the commit fails after it, the retry publishes
    the same event ids again, which the statistics consumer ignores.
    """
    ids = sorted({int(e.messageId) for e in events})
    async with pool.acquire() as conn, conn.transaction():
        owned = {r["id"]: r for r in await conn.fetch(OWNED, ids, contact_id)}
        unknown = [str(i) for i in ids if i not in owned]
        if unknown:
            raise UnknownMessages(unknown)
        # event ids are the device's; they are kept per contact so no one can pre-empt another's
        fresh = await conn.fetch(
            _INSERT, contact_id, [f"{contact_id}:{e.eventId}" for e in events],
            [int(e.messageId) for e in events], [e.type for e in events], [e.at for e in events],
        )  # fmt: skip
        await _count_views(conn, contact_id, fresh)
        await _stamp(conn, contact_id, fresh)
        applied = [
            Applied(r["event_id"], str(r["entry_id"]), r["type"], r["at"],
                    owned[r["entry_id"]]["send_job_id"], owned[r["entry_id"]]["content_id"])
            for r in fresh
        ]  # fmt: skip
        if applied:
            await publish(applied)
    return applied


async def _count_views(
    conn: PoolConnectionProxy, contact_id: str, fresh: list[asyncpg.Record]
) -> None:
    uncounted = []
    for row in fresh:
        if row["type"] == "view" and not await conn.fetchval(
            COUNT_VIEW, row["entry_id"], contact_id
        ):
            uncounted.append(row["event_id"])
    if uncounted:
        await conn.execute(
            "UPDATE engagement_events SET counted = false WHERE event_id = ANY($1)", uncounted
        )


async def _stamp(conn: PoolConnectionProxy, contact_id: str, fresh: list[asyncpg.Record]) -> None:
    for kind, sql in STAMP.items():
        stamped = [(r["entry_id"], r["at"]) for r in fresh if r["type"] == kind]
        if stamped:
            await conn.execute(sql, contact_id, [s[0] for s in stamped], [s[1] for s in stamped])
