"""SQL of the sync service."""

from __future__ import annotations

import asyncpg

PENDING_LIMIT = 100

# Sync's statements are keyed lookups, one contact's entries of inbox_entries at a time:
# one plan per statement serves every contact, and the partition is chosen at run time.
# PostgreSQL's default would replan them for every call (a plan of a partitioned table
# costs all 16 partitions, so the planner never prefers the plan it keeps): four times
# the server's CPU per phone home (280 against 70 µs; generic: 90 µs, measured on
# 650,000 entries). Given when the pool connects.
POOL_SETTINGS = {"plan_cache_mode": "force_generic_plan"}

# One round trip: the unread App Inbox count (the badge: services/sync/inbox.py), and the
# pending in-app messages for the requesting platform. An entry filed by value brings its
# merge-tag texts (sync renders its content); one stored rendered brings only that
# platform's template, never the other platforms'. The count row is always there; with
# nothing pending its message columns are NULL. Both parts name the contact ($1): they
# read the one partition of inbox_entries it hashes to.
PHONE_HOME = """
WITH pending AS (
    SELECT id, content_id, merge_values, max_views, views, expires_at, priority,
           CASE WHEN payload IS NOT NULL THEN payload->'payload'->$3 END AS template
      FROM inbox_entries
     WHERE contact_id = $1 AND kind = 'inapp' AND $2 = ANY(app_keys)
       AND deleted_at IS NULL AND clicked_at IS NULL AND views < max_views
       AND (expires_at IS NULL OR expires_at > now())
       AND CASE WHEN payload IS NULL THEN platforms & $5 <> 0 ELSE payload->'payload' ? $3 END
     ORDER BY priority DESC, id DESC
     LIMIT $4
), unread AS (
    SELECT count(*) AS unread FROM inbox_entries
     WHERE contact_id = $1 AND kind = 'inbox' AND $2 = ANY(app_keys)
       AND deleted_at IS NULL AND evicted_at IS NULL AND read_at IS NULL
       AND archived_at IS NULL AND (expires_at IS NULL OR expires_at > now())
)
SELECT u.unread, p.* FROM unread u LEFT JOIN pending p ON true
 ORDER BY p.priority DESC, p.id DESC
"""


async def phone_home(
    pool: asyncpg.Pool, contact_id: str, app_key: str, platform: str, platform_bit: int
) -> tuple[int, list[asyncpg.Record]]:
    """(unread App Inbox count, pending in-app messages for the platform: highest priority
    first, then newest)."""
    rows = await pool.fetch(PHONE_HOME, contact_id, app_key, platform, PENDING_LIMIT, platform_bit)
    return rows[0]["unread"], [r for r in rows if r["id"] is not None]
