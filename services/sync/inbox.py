"""The App Inbox of one contact in one app: list and filter, counts, and its states.

An entry is read or unread, archived or not, pinned or not, and can be deleted. The
inbox view (no ``status``) lists what is not archived; ``status`` picks unread, read
(both not archived), archived, or all. Pinned entries come first, then newest first.
The unread count (the badge) is of unread entries in the inbox view: archiving an unread
entry takes it off the badge. Expired, deleted and evicted entries never appear.

Every action is idempotent (setting a state it already has changes nothing) and names a
message of this contact in this app, or is a 404. The bulk actions (mark all read,
archive all, optionally for one category) change what is visible when their statement
runs: an entry delivered meanwhile stays unread, so counts read afterwards are exact.

Every statement names the contact ($1): it reads the one partition of inbox_entries the
contact hashes to (tests/integration/test_inbox_partitions.py checks the plans). A
content's category comes with the entry from ``contents`` (immutable once published).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import asyncpg

from services.sync.contents import CONTENTS

MAX_PAGE = 100
Status = Literal["unread", "read", "archived", "all"]
Action = Literal["read", "unread", "archive", "unarchive", "pin", "unpin", "delete"]

VISIBLE = """
e.contact_id = $1 AND e.kind = 'inbox' AND $2 = ANY(e.app_keys)
AND e.deleted_at IS NULL AND e.evicted_at IS NULL AND (e.expires_at IS NULL OR e.expires_at > now())
"""
# The badge: unread entries in the inbox view (also services/sync/repository.py and
# stream.py, which count it for many contacts at once).
UNREAD = "e.read_at IS NULL AND e.archived_at IS NULL"
_STATUS: dict[Status | None, str] = {
    None: "e.archived_at IS NULL",
    "unread": UNREAD,
    "read": "e.read_at IS NOT NULL AND e.archived_at IS NULL",
    "archived": "e.archived_at IS NOT NULL",
    "all": "true",
}

# What a device is shown of an entry, and where it comes from (alias e).
ENTRY_SELECT = """
SELECT e.id, e.content_id, e.payload, e.merge_values, e.delivered_at, e.expires_at,
       e.read_at, e.archived_at, e.pinned_at, c.category
  FROM inbox_entries e LEFT JOIN contents c ON c.id = e.content_id
"""

# Keyset paging on (pinned first, newest first): $5 is 1 while paging through pinned
# entries, 0 after; a page's last entry gives both.
PAGE = {
    status: f"""{ENTRY_SELECT}
            WHERE {VISIBLE} AND {condition} AND ($3::text IS NULL OR c.category = $3)
              AND ($4::bigint IS NULL OR ((e.pinned_at IS NOT NULL)::int, e.id) < ($5, $4))
            ORDER BY (e.pinned_at IS NOT NULL) DESC, e.id DESC LIMIT $6"""
    for status, condition in _STATUS.items()
}

UNREAD_COUNTS = f"""
SELECT c.category, count(*) AS unread
  FROM inbox_entries e LEFT JOIN contents c ON c.id = e.content_id
 WHERE {VISIBLE} AND {UNREAD}
 GROUP BY c.category ORDER BY c.category NULLS LAST
"""

# An action's assignment: stamps keep their first time (read, delete); toggles set or clear.
_SET: dict[Action, str] = {
    "read": "read_at = coalesce(e.read_at, now())",
    "unread": "read_at = NULL",
    "archive": "archived_at = coalesce(e.archived_at, now())",
    "unarchive": "archived_at = NULL",
    "pin": "pinned_at = coalesce(e.pinned_at, now())",
    "unpin": "pinned_at = NULL",
    "delete": "deleted_at = coalesce(e.deleted_at, now())",
}
# the column an action changes, to tell whether it changed anything
_COLUMN: dict[Action, str] = {
    "read": "read_at", "unread": "read_at", "archive": "archived_at",
    "unarchive": "archived_at", "pin": "pinned_at", "unpin": "pinned_at",
    "delete": "deleted_at",
}  # fmt: skip

# One entry: the row before (FOR UPDATE, so two devices' actions queue) and after.
ACT = {
    action: f"""WITH before AS (
                    SELECT e.id, e.{_COLUMN[action]} AS was FROM inbox_entries e
                     WHERE e.id = $3 AND {VISIBLE} FOR UPDATE)
                UPDATE inbox_entries e SET {assignment}
                  FROM before b WHERE e.id = b.id AND e.contact_id = $1
                RETURNING e.id, e.send_job_id, e.content_id,
                          (b.was IS DISTINCT FROM e.{_COLUMN[action]}) AS changed"""
    for action, assignment in _SET.items()
}

# Every visible entry of the inbox view (optionally of one category) not yet in the state.
BULK = {
    action: f"""UPDATE inbox_entries e SET {_SET[action]}
                 WHERE {VISIBLE} AND e.{_COLUMN[action]} IS NULL
                   AND e.archived_at IS NULL
                   AND ($3::text IS NULL OR e.content_id IN
                        (SELECT c.id FROM contents c WHERE c.category = $3))
             RETURNING e.id, e.send_job_id, e.content_id"""
    for action in ("read", "archive")
}


async def page(
    pool: asyncpg.Pool,
    contact_id: str,
    app_key: str,
    *,
    status: Status | None,
    category: str | None,
    after: tuple[int, int] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Pinned first, then newest first; ``after`` is (pinned 1/0, id) of the last entry of
    the previous page."""
    pinned, last_id = after if after is not None else (None, None)
    return await pool.fetch(
        PAGE[status], contact_id, app_key, category, last_id, pinned, limit
    )  # fmt: skip


async def views(pool: asyncpg.Pool, rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    """The device's view of each entry row (of ``ENTRY_SELECT``), the copy rendered here
    for an entry filed by value."""
    contents = await CONTENTS.get_many(
        pool, {r["content_id"] for r in rows if r["payload"] is None}
    )
    shown = []
    for row in rows:
        payload = row["payload"]
        if payload is None:
            content = contents.get(row["content_id"])
            payload = content.rendered(row["merge_values"] or {}) if content else {}
        shown.append(entry_view(row, payload))
    return shown


async def unread_counts(pool: asyncpg.Pool, contact_id: str, app_key: str) -> dict[str, Any]:
    """The badge, total and per category (``null``: content without a category)."""
    rows = await pool.fetch(UNREAD_COUNTS, contact_id, app_key)
    return {
        "unreadCount": sum(r["unread"] for r in rows),
        "byCategory": [{"category": r["category"], "unread": r["unread"]} for r in rows],
    }


async def act(
    pool: asyncpg.Pool, contact_id: str, app_key: str, entry_id: int, action: Action
) -> asyncpg.Record | None:
    """Apply one action; the row (with ``changed``) or None if not this contact's."""
    return await pool.fetchrow(ACT[action], contact_id, app_key, entry_id)


async def act_on_all(
    pool: asyncpg.Pool, contact_id: str, app_key: str, action: str, category: str | None
) -> list[asyncpg.Record]:
    """Mark read or archive every entry of the inbox view (of ``category``); the rows changed."""
    return await pool.fetch(BULK[action], contact_id, app_key, category)


def entry_view(
    row: asyncpg.Record | Mapping[str, Any], payload: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "inboxContentId": row["content_id"],
        "title": payload.get("title"),
        "text": payload.get("text"),
        "url": payload.get("url") or None,
        "openInNewTab": bool(payload.get("openInNewTab", False)),
        "image": payload.get("image") or None,
        "logo": payload.get("logo") or None,
        "category": row["category"],
        "deliveredAt": row["delivered_at"].isoformat(),
        "expiresAt": row["expires_at"].isoformat() if row["expires_at"] else None,
        "read": row["read_at"] is not None,
        "archived": row["archived_at"] is not None,
        "pinned": row["pinned_at"] is not None,
    }
