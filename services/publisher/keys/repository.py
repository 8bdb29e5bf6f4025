"""SQL of API tokens and of app secrets."""

from __future__ import annotations

import secrets

import asyncpg

_TOKEN_COLUMNS = "id, name, scopes, created_at, last_used_at, revoked_at, requests_per_minute"


async def list_tokens(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, id")


async def revoke_token(pool: asyncpg.Pool, token_id: str) -> asyncpg.Record | None:
    """Revoke the token (kept revoked at its first revocation's time); None if unknown."""
    return await pool.fetchrow(
        f"""UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())
             WHERE id = $1 RETURNING {_TOKEN_COLUMNS}""",
        token_id,
    )


async def rotate_secret(
    pool: asyncpg.Pool, app_key: str, overlap_seconds: int
) -> asyncpg.Record | None:
    """Give the app a new secret; the current one verifies for ``overlap_seconds`` more
    (none: retired at once). A previous secret still verifying is dropped. None if there
    is no such app."""
    return await pool.fetchrow(
        """UPDATE apps
              SET previous_secret = CASE WHEN $3 > 0 THEN secret END,
                  previous_secret_expires_at =
                      CASE WHEN $3 > 0 THEN now() + make_interval(secs => $3) END,
                  secret = $2
            WHERE app_key = $1
        RETURNING app_key, secret, previous_secret_expires_at""",
        app_key,
        secrets.token_urlsafe(32),
        overlap_seconds,
    )


async def retire_secret(pool: asyncpg.Pool, app_key: str) -> asyncpg.Record | None:
    """Stop the previous secret verifying; the row as it was before, None if no such app."""
    return await pool.fetchrow(
        """UPDATE apps a SET previous_secret = NULL, previous_secret_expires_at = NULL
             FROM apps b WHERE a.app_key = $1 AND b.app_key = a.app_key
        RETURNING coalesce(b.previous_secret_expires_at > now(), false) AS was_verifying""",
        app_key,
    )


async def set_device_limit(
    pool: asyncpg.Pool, app_key: str, per_minute: int | None
) -> asyncpg.Record | None:
    return await pool.fetchrow(
        """UPDATE apps SET device_requests_per_minute = $2 WHERE app_key = $1
        RETURNING device_requests_per_minute""",
        app_key,
        per_minute,
    )
