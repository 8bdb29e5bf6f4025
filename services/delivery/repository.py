"""SQL of the delivery worker: set-based reads and writes, one statement per batch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Content:
    id: str
    kind: str
    body: dict[str, Any]
    personalization_defaults: dict[str, Any]
    personalization_formulas: dict[str, str]
    category: str | None
    tags: list[str]
    ttl_seconds: int | None


@dataclass(frozen=True)
class ContactState:
    attributes: dict[str, Any]
    subscriptions: dict[str, bool]


@dataclass(frozen=True)
class NewEntry:
    contact_id: str
    payload: dict[str, Any]
    max_views: int
    expires_at: datetime | None


async def load_content(pool: asyncpg.Pool, content_id: str) -> Content | None:
    row = await pool.fetchrow(
        """SELECT id, kind, body, personalization_defaults, personalization_formulas, category,
                  tags, ttl_seconds
             FROM contents WHERE id = $1""",
        content_id,
    )
    return Content(**dict(row)) if row else None


async def load_contacts(pool: asyncpg.Pool, contact_ids: list[str]) -> dict[str, ContactState]:
    rows = await pool.fetch(
        "SELECT contact_id, attributes, subscriptions FROM contacts WHERE contact_id = ANY($1)",
        contact_ids,
    )
    return {r["contact_id"]: ContactState(r["attributes"], r["subscriptions"]) for r in rows}


_INSERT_ENTRIES = """
INSERT INTO inbox_entries (send_job_id, contact_id, content_id, kind, app_keys, payload,
                           max_views, expires_at, is_test)
SELECT $1, t.contact_id, $2, $3, $4, t.payload, t.max_views, t.expires_at, $5
  FROM unnest($6::text[], $7::jsonb[], $8::int[], $9::timestamptz[])
       AS t(contact_id, payload, max_views, expires_at)
ON CONFLICT (send_job_id, contact_id) DO NOTHING
RETURNING contact_id
"""


async def insert_entries(
    pool: asyncpg.Pool,
    *,
    job_id: int,
    content: Content,
    app_keys: list[str],
    is_test: bool,
    entries: list[NewEntry],
) -> set[str]:
    """File the entries; return the contacts that got a new one (the rest already had it)."""
    if not entries:
        return set()
    rows = await pool.fetch(
        _INSERT_ENTRIES,
        job_id,
        content.id,
        content.kind,
        app_keys,
        is_test,
        [e.contact_id for e in entries],
        [e.payload for e in entries],
        [e.max_views for e in entries],
        [e.expires_at for e in entries],
    )
    return {r["contact_id"] for r in rows}


_INSERT_CAP_HITS = """
INSERT INTO cap_hits (send_job_id, contact_id, scopes, counted_at)
SELECT $1, contact_id, $3, $4 FROM unnest($2::text[]) AS t(contact_id)
ON CONFLICT (send_job_id, contact_id) DO NOTHING
"""


async def insert_cap_hits(
    pool: asyncpg.Pool, job_id: int, contact_ids: list[str], scopes: list[str], at: datetime
) -> None:
    """Record that the send counted against ``scopes`` for each contact (the durable copy of
    the Redis cap sets; see services/delivery/caps.py). One statement per batch."""
    if contact_ids and scopes:
        await pool.execute(_INSERT_CAP_HITS, job_id, contact_ids, scopes, at)


async def load_app_limits(pool: asyncpg.Pool, app_keys: list[str]) -> dict[str, dict[str, int]]:
    rows = await pool.fetch(
        "SELECT app_key, frequency_limits FROM apps WHERE app_key = ANY($1)", app_keys
    )
    return {r["app_key"]: r["frequency_limits"] for r in rows}


async def load_tag_caps(pool: asyncpg.Pool, tags: list[str]) -> dict[str, tuple[int, int]]:
    rows = await pool.fetch(
        "SELECT tag, max_count, period_seconds FROM tag_caps WHERE tag = ANY($1)", tags
    )
    return {r["tag"]: (r["max_count"], r["period_seconds"]) for r in rows}


_EVICT = """
UPDATE inbox_entries SET evicted_at = now()
 WHERE id IN (
       SELECT id FROM (
              SELECT id, row_number() OVER (PARTITION BY contact_id ORDER BY id DESC) AS newer
                FROM inbox_entries
               WHERE contact_id = ANY($1) AND kind = 'inbox'
                 AND deleted_at IS NULL AND evicted_at IS NULL) ranked
        WHERE newer > $2)
"""


async def evict_oldest(pool: asyncpg.Pool, contact_ids: list[str], cap: int) -> int:
    """Keep each contact's App Inbox at ``cap`` entries at most: the oldest go first."""
    if not contact_ids:
        return 0
    result = await pool.execute(_EVICT, contact_ids, cap)
    return int(result.split()[-1])
