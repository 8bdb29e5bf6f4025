"""The App Inbox of one contact in one app: list, unread count, read, delete.

Expired, deleted and evicted entries never appear. Reading and deleting are idempotent;
naming a message that is not this contact's (or does not exist) is a 404 either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from services.sync.contents import CONTENTS

MAX_PAGE = 100

# Every statement names the contact ($1): it reads the one partition of inbox_entries
# the contact hashes to (tests/integration/test_inbox_partitions.py checks the plans).
_VISIBLE = """
contact_id = $1 AND kind = 'inbox' AND $2 = ANY(app_keys)
AND deleted_at IS NULL AND evicted_at IS NULL AND (expires_at IS NULL OR expires_at > now())
"""

PAGE = f"""SELECT id, content_id, payload, merge_values, delivered_at, expires_at, read_at
             FROM inbox_entries
            WHERE {_VISIBLE} AND ($3::bigint IS NULL OR id < $3)
            ORDER BY id DESC LIMIT $4"""

UNREAD_COUNT = f"SELECT count(*) FROM inbox_entries WHERE {_VISIBLE} AND read_at IS NULL"

# column names come from this table, never from input
MARK = {
    column: f"""UPDATE inbox_entries SET {column} = coalesce({column}, now())
                 WHERE id = $3 AND {_VISIBLE}
             RETURNING id, send_job_id, content_id, {column} AS at"""
    for column in ("read_at", "deleted_at")
}


async def page(
    pool: asyncpg.Pool, contact_id: str, app_key: str, before: int | None, limit: int
) -> list[dict[str, Any]]:
    """Newest first; ``before`` is the id of the last entry of the previous page. Each
    row's ``payload`` is the recipient's copy (rendered here for an entry filed by
    value)."""
    rows = await pool.fetch(PAGE, contact_id, app_key, before, limit)
    contents = await CONTENTS.get_many(
        pool, {r["content_id"] for r in rows if r["payload"] is None}
    )
    copies = []
    for row in rows:
        copy = dict(row)
        if copy["payload"] is None:
            content = contents.get(row["content_id"])
            copy["payload"] = content.rendered(row["merge_values"] or {}) if content else {}
        copies.append(copy)
    return copies


async def unread_count(pool: asyncpg.Pool, contact_id: str, app_key: str) -> int:
    count: int = await pool.fetchval(UNREAD_COUNT, contact_id, app_key)
    return count


async def mark(
    pool: asyncpg.Pool, contact_id: str, app_key: str, entry_id: int, column: str
) -> asyncpg.Record | None:
    """Stamp ``read_at`` or ``deleted_at`` (first time wins); None if not this contact's."""
    return await pool.fetchrow(MARK[column], contact_id, app_key, entry_id)


def entry_view(row: Mapping[str, Any]) -> dict[str, Any]:
    payload = row["payload"]
    return {
        "id": str(row["id"]),
        "inboxContentId": row["content_id"],
        "title": payload.get("title"),
        "text": payload.get("text"),
        "url": payload.get("url") or None,
        "openInNewTab": bool(payload.get("openInNewTab", False)),
        "image": payload.get("image") or None,
        "logo": payload.get("logo") or None,
        "deliveredAt": row["delivered_at"].isoformat(),
        "expiresAt": row["expires_at"].isoformat() if row["expires_at"] else None,
        "read": row["read_at"] is not None,
    }
