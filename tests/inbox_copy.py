"""What a device gets for an inbox entry, read straight from PostgreSQL: the copy stored
rendered, or the content rendered with the entry's stored merge-tag texts."""

from __future__ import annotations

from typing import Any

import asyncpg

from shared.personalization import compile_tree


async def delivered_copy(pool: asyncpg.Pool, job_id: int, contact_id: str) -> Any:
    """The entry's copy of its content, or None when the contact has no entry."""
    row = await pool.fetchrow(
        """SELECT e.payload, e.merge_values, c.body FROM inbox_entries e
             JOIN contents c ON c.id = e.content_id
            WHERE e.send_job_id = $1 AND e.contact_id = $2""",
        job_id,
        contact_id,
    )
    if row is None:
        return None
    return row["payload"] or compile_tree(row["body"])(row["merge_values"] or {})
