"""SQL of webhook endpoints and their dead letters."""

from __future__ import annotations

import secrets
from typing import Any

import asyncpg

COLUMNS = "id, app_key, url, event_types, enabled, max_attempts, created_at, updated_at"


async def create(
    pool: asyncpg.Pool, app_key: str, url: str, events: list[str], max_attempts: int | None
) -> asyncpg.Record | None:
    """The new endpoint with its secret; None if there is no such app."""
    try:
        return await pool.fetchrow(
            f"""INSERT INTO webhook_endpoints (app_key, url, secret, event_types, max_attempts)
                VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}, secret""",
            app_key, url, "whsec_" + secrets.token_urlsafe(32), sorted(set(events)),
            max_attempts,
        )  # fmt: skip
    except asyncpg.ForeignKeyViolationError:
        return None


async def list_for_app(pool: asyncpg.Pool, app_key: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        f"""SELECT {COLUMNS},
                   (SELECT count(*) FROM webhook_outbox o
                     WHERE o.endpoint_id = e.id AND o.status = 'dead') AS dead_letters
              FROM webhook_endpoints e WHERE app_key = $1 ORDER BY id""",
        app_key,
    )


async def get(pool: asyncpg.Pool, app_key: str, endpoint_id: int) -> asyncpg.Record | None:
    return await pool.fetchrow(
        f"SELECT {COLUMNS}, secret FROM webhook_endpoints WHERE app_key = $1 AND id = $2",
        app_key,
        endpoint_id,
    )


async def update(
    pool: asyncpg.Pool, app_key: str, endpoint_id: int, changes: dict[str, Any]
) -> asyncpg.Record | None:
    columns = {"url": "url", "events": "event_types", "enabled": "enabled",
               "maxAttempts": "max_attempts"}  # fmt: skip
    values = [sorted(set(v)) if k == "events" else v for k, v in changes.items()]
    sets = ", ".join(f"{columns[k]} = ${i}" for i, k in enumerate(changes, start=3))
    return await pool.fetchrow(
        f"""UPDATE webhook_endpoints SET {sets + ", " if sets else ""}updated_at = now()
             WHERE app_key = $1 AND id = $2 RETURNING {COLUMNS}""",
        app_key, endpoint_id, *values,
    )  # fmt: skip


async def delete(pool: asyncpg.Pool, app_key: str, endpoint_id: int) -> bool:
    result: str = await pool.execute(
        "DELETE FROM webhook_endpoints WHERE app_key = $1 AND id = $2", app_key, endpoint_id
    )
    return result.endswith(" 1")


async def dead_letters(
    pool: asyncpg.Pool, endpoint_id: int, after: int, limit: int
) -> list[asyncpg.Record]:
    return await pool.fetch(
        """SELECT id, event_id, event::text AS event, attempts, last_error, updated_at
             FROM webhook_outbox WHERE endpoint_id = $1 AND status = 'dead' AND id > $2
            ORDER BY id LIMIT $3""",
        endpoint_id, after, limit,
    )  # fmt: skip


async def replay(pool: asyncpg.Pool, endpoint_id: int, ids: list[int] | None) -> int:
    """Dead letters back to pending, due now, with their attempts counted afresh."""
    result: str = await pool.execute(
        """UPDATE webhook_outbox SET status = 'pending', attempts = 0, next_attempt_at = now(),
                  created_at = now(), updated_at = now()
            WHERE endpoint_id = $1 AND status = 'dead'
              AND ($2::bigint[] IS NULL OR id = ANY($2::bigint[]))""",
        endpoint_id, ids,
    )  # fmt: skip
    return int(result.rsplit(" ", 1)[-1])
