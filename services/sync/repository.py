"""SQL of the sync service."""

from __future__ import annotations

import asyncpg

PENDING_LIMIT = 100

_PENDING_INAPP = """
SELECT id, content_id, payload, max_views, views, expires_at
  FROM inbox_entries
 WHERE contact_id = $1 AND kind = 'inapp' AND $2 = ANY(app_keys)
   AND deleted_at IS NULL AND clicked_at IS NULL AND views < max_views
   AND (expires_at IS NULL OR expires_at > now())
 ORDER BY id DESC
 LIMIT $3
"""


async def pending_inapp(pool: asyncpg.Pool, contact_id: str, app_key: str) -> list[asyncpg.Record]:
    return await pool.fetch(_PENDING_INAPP, contact_id, app_key, PENDING_LIMIT)
