"""Delta sync: ``GET /v1/inbox/changes`` — what changed in the contact's App Inbox (this
app's) since a device's cursor, so its copy stays exact without a refetch.

Every entry carries ``change_xid``, the transaction that last filed or changed it
(migration 0017: the column's default and a row trigger). A cursor is
``<xid>.<unix ms>``: the oldest transaction that had not ended when the previous answer
was read (``pg_snapshot_xmin``; every older one had ended, its changes were in that
answer) and the database's time of that read. The next answer is read in one statement,
one snapshot:

- ``upserted``: visible entries with ``change_xid >= xid`` (new, read/unread, archived,
  pinned, ...), rendered as ``GET /v1/inbox`` shows them (``inbox.ENTRY_SELECT``, ``views``);
- ``removed``: ids of entries changed since ``xid`` that are not visible (deleted,
  evicted, expired), of entries that expired since the cursor's time (expiry changes no
  row), and of tombstones (entries the purge deleted) written since ``xid``.

A transaction still running at a read has an xid at or above that read's xmin, so what it
commits later is in the next answer: nothing is skipped; an entry may be sent twice
(applying an upsert or a removal again changes nothing), and ``removed`` may name an
entry the device never held. Without a cursor: every visible entry, and a cursor.

A cursor at or below the newest purged tombstone's transaction may have missed a removal:
``410``, the device refetches without ``since``. Pages: ``more`` is true when ``limit``
cut the answer; the cursor then continues it (newest first), and the last page's cursor
is the first page's snapshot, so what changed while paging comes next time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Query, Request

from services.sync import inbox
from services.sync.auth import Device, authenticate
from shared.http_limits import BIGINT_MAX

router = APIRouter(tags=["App Inbox"])
AuthenticatedDevice = Annotated[Device, Depends(authenticate)]

MAX_LIMIT = 200  # the App Inbox keeps 200 entries a contact by default
REFETCH = (
    "the cursor is older than the removals kept: refetch the whole inbox"
    " (GET /v1/inbox/changes without since) and continue from its cursor"
)
# "<xid>.<ms>"; a page's continuation: "<xid>.<ms>.<before id>.<next xid>.<next ms>",
# xid 0 when continuing a full fetch
_CURSOR = re.compile(
    r"^([0-9]{1,19})\.([0-9]{1,15})(?:\.([0-9]{1,19})\.([0-9]{1,19})\.([0-9]{1,15}))?$"
)

# One statement, one snapshot: the page of changed ids (entries and tombstones), then each
# visible one rendered through a lateral probe of the primary key. OFFSET 0 keeps that a
# probe: pulled up into a join, a generic plan (it expects 3 rows a page) scans the
# contact's entries once for every row of the page (200 x 200; 6.6 -> 2.0 ms measured).
# $1 contact, $2 app key, $3 since xid (text; NULL: everything visible), $4 since time
# (unix ms), $5 before this id (NULL: from the newest), $6 rows wanted.
_SINCE = "$3::text::xid8"
_SINCE_AT = "timestamptz 'epoch' + ($4::bigint - 1) * interval '1 millisecond'"
# a cursor's time ahead of the database's clock by more than this was not given by it (a
# clock stepped back by less still answers)
_CLOCK_SLACK_MS = 300_000
VISIBLE = inbox.VISIBLE  # what GET /v1/inbox?status=all lists
CHANGES = f"""
WITH snap AS (
    SELECT pg_current_snapshot() AS s, floor(extract(epoch FROM now()) * 1000)::bigint AS at_ms
), page AS (
    SELECT x.id, x.visible FROM (
        SELECT e.id, ({VISIBLE}) AS visible
          FROM inbox_entries e
         WHERE e.contact_id = $1 AND e.kind = 'inbox' AND $2 = ANY(e.app_keys)
           AND ($5::bigint IS NULL OR e.id < $5)
           AND CASE WHEN $3::text IS NULL THEN {VISIBLE}
                    ELSE e.change_xid >= {_SINCE}
                         OR (e.expires_at <= now() AND e.expires_at > {_SINCE_AT}) END
        UNION ALL
        SELECT t.entry_id, false
          FROM inbox_tombstones t
         WHERE t.contact_id = $1 AND $2 = ANY(t.app_keys) AND t.change_xid >= {_SINCE}
           AND ($5::bigint IS NULL OR t.entry_id < $5)
    ) x ORDER BY x.id DESC LIMIT $6
)
SELECT pg_snapshot_xmin(s.s)::text AS next_xid, s.at_ms AS next_ms,
       coalesce(pg_snapshot_xmax(s.s) < {_SINCE} OR $4::bigint > s.at_ms + {_CLOCK_SLACK_MS},
                false) AS ahead,
       coalesce((SELECT h.purged_xid >= {_SINCE} FROM inbox_tombstones_horizon h), false)
           AS too_old,
       p.id AS change_id, p.visible, v.*
  FROM snap s
  LEFT JOIN page p ON true
  LEFT JOIN LATERAL ({inbox.ENTRY_SELECT}
                     WHERE e.contact_id = $1 AND e.id = p.id AND p.visible OFFSET 0) v ON true
 ORDER BY p.id DESC
"""


class BadCursor(ValueError):
    """Not a cursor this API gave."""


class CursorTooOld(Exception):
    """The removals since the cursor are no longer all kept."""


@dataclass(frozen=True)
class Cursor:
    since_xid: str | None  # None: everything visible (a first fetch)
    since_ms: int
    before_id: int | None = None  # a page's continuation: entries older than this id
    next_cursor: str | None = None  # and the cursor its last page answers

    @classmethod
    def parse(cls, text: str | None) -> Cursor:
        if text is None:
            return cls(None, 0)
        found = _CURSOR.match(text)
        if found is None or any(int(p) > BIGINT_MAX for p in found.groups() if p):
            raise BadCursor(text)
        xid, ms, before, next_xid, next_ms = found.groups()
        since = None if xid == "0" and before is not None else xid
        if before is None:
            return cls(since, int(ms))
        return cls(since, int(ms), int(before), f"{next_xid}.{next_ms}")

    def continued(self, before_id: int, next_cursor: str) -> str:
        return f"{self.since_xid or 0}.{self.since_ms}.{before_id}.{next_cursor}"


async def read(
    pool: asyncpg.Pool, contact_id: str, app_key: str, cursor: Cursor, limit: int
) -> dict[str, Any]:
    """The answer to a device holding ``cursor``: ``upserted``, ``removed``, ``cursor``,
    ``more``. Raises BadCursor for a cursor from the future, CursorTooOld."""
    rows = await pool.fetch(
        CHANGES, contact_id, app_key, cursor.since_xid, cursor.since_ms, cursor.before_id,
        limit + 1,
    )  # fmt: skip
    head = rows[0]  # the snapshot's row is always there
    if head["ahead"]:
        raise BadCursor(cursor.since_xid)
    if head["too_old"]:
        raise CursorTooOld
    page = [r for r in rows if r["change_id"] is not None]
    more = len(page) > limit
    page = page[:limit]
    settled = cursor.next_cursor or f"{head['next_xid']}.{head['next_ms']}"
    return {
        "upserted": await inbox.views(pool, [r for r in page if r["visible"]]),
        "removed": [str(r["change_id"]) for r in page if not r["visible"]],
        "cursor": cursor.continued(page[-1]["change_id"], settled) if more else settled,
        "more": more,
    }


def _bad_since() -> HTTPException:
    detail = [{"loc": ["query", "since"], "msg": "not a cursor this API gave",
               "type": "value_error"}]  # fmt: skip
    return HTTPException(422, detail)


@router.get("/v1/inbox/changes", responses={410: {"description": REFETCH}})
async def inbox_changes(
    request: Request,
    device: AuthenticatedDevice,
    since: Annotated[str | None, Query(min_length=3, max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> dict[str, Any]:
    """What changed in the App Inbox since ``since`` (a ``cursor`` this call gave):
    ``upserted`` entries (as ``GET /v1/inbox`` shows them), ``removed`` ids, the next
    ``cursor``, and ``more`` (call again at once with the cursor). Without ``since``:
    every entry (``status=all``). ``410``: the cursor is too old, refetch without it."""
    try:
        cursor = Cursor.parse(since)
        return await read(
            request.app.state.pool, device.contact_id, device.app.app_key, cursor, limit
        )
    except BadCursor as exc:
        raise _bad_since() from exc
    except CursorTooOld as exc:
        raise HTTPException(410, REFETCH) from exc
