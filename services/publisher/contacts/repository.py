"""SQL of contacts: one upsert, and the set-based upsert of many."""

from __future__ import annotations

from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.topics import bucket_of


async def upsert_contact(
    pool: asyncpg.Pool, contact_id: str, attributes: dict[str, Any], subscriptions: dict[str, bool]
) -> asyncpg.Record:
    """Insert or merge: given attribute and subscription keys replace the stored ones."""
    row = await pool.fetchrow(
        """INSERT INTO contacts (contact_id, bucket, attributes, subscriptions)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (contact_id) DO UPDATE
              SET attributes = contacts.attributes || EXCLUDED.attributes,
                  subscriptions = contacts.subscriptions || EXCLUDED.subscriptions,
                  updated_at = now()
           RETURNING *, (xmax = 0) AS created""",
        contact_id,
        bucket_of(contact_id),
        attributes,
        subscriptions,
    )
    assert row is not None
    return row


async def get_contact(pool: asyncpg.Pool, contact_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM contacts WHERE contact_id = $1", contact_id)


_UPSERT_CONTACTS = """
INSERT INTO contacts (contact_id, bucket, attributes, subscriptions)
SELECT t.contact_id, t.bucket, t.attributes, t.subscriptions
  FROM unnest($1::text[], $2::smallint[], $3::jsonb[], $4::jsonb[])
       AS t(contact_id, bucket, attributes, subscriptions)
ON CONFLICT (contact_id) DO UPDATE
   SET attributes = contacts.attributes || EXCLUDED.attributes,
       subscriptions = contacts.subscriptions || EXCLUDED.subscriptions,
       updated_at = now()
"""


ContactChange = tuple[str, dict[str, Any], dict[str, bool]]


Executor = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy


def merge_changes(changes: list[ContactChange]) -> list[ContactChange]:
    """One row per contact (an INSERT … ON CONFLICT may touch a row once); later keys win."""
    merged: dict[str, ContactChange] = {}
    for contact_id, attributes, subscriptions in changes:
        if contact_id in merged:
            _, attrs, subs = merged[contact_id]
            attributes, subscriptions = {**attrs, **attributes}, {**subs, **subscriptions}
        merged[contact_id] = (contact_id, attributes, subscriptions)
    return list(merged.values())


async def upsert_contacts(conn: Executor, changes: list[ContactChange]) -> int:
    """Set-based upsert of many contacts with the same merge rule as one PUT."""
    rows = merge_changes(changes)
    if rows:
        await conn.execute(
            _UPSERT_CONTACTS,
            [r[0] for r in rows],
            [bucket_of(r[0]) for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
        )
    return len(rows)
