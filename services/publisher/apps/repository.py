"""SQL of apps and tag caps."""

from __future__ import annotations

from typing import Any

import asyncpg


async def app_deep_link_schemes(pool: asyncpg.Pool, app_keys: list[str]) -> dict[str, set[str]]:
    """The deep-link schemes of each existing app among ``app_keys``."""
    rows = await pool.fetch(
        "SELECT app_key, deep_link_schemes FROM apps WHERE app_key = ANY($1)", app_keys
    )
    return {r["app_key"]: set(r["deep_link_schemes"]) for r in rows}


async def declared_deep_link_schemes(pool: asyncpg.Pool) -> set[str]:
    """Every deep-link scheme some app declares."""
    rows = await pool.fetch("SELECT DISTINCT unnest(deep_link_schemes) AS scheme FROM apps")
    return {r["scheme"] for r in rows}


async def insert_app(pool: asyncpg.Pool, row: dict[str, Any]) -> None:
    await pool.execute(
        """INSERT INTO apps (app_key, name, secret, frequency_limits, next_sync_after_seconds,
                             deep_link_schemes)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        row["app_key"],
        row["name"],
        row["secret"],
        row["frequency_limits"],
        row["next_sync_after_seconds"],
        row["deep_link_schemes"],
    )


async def set_deep_link_schemes(
    pool: asyncpg.Pool, app_key: str, schemes: list[str]
) -> asyncpg.Record:
    row = await pool.fetchrow(
        "UPDATE apps SET deep_link_schemes = $2 WHERE app_key = $1 RETURNING *", app_key, schemes
    )
    assert row is not None, "checked to exist by the caller; apps are never deleted"
    return row


async def set_categories(
    pool: asyncpg.Pool, app_key: str, categories: list[dict[str, str]]
) -> asyncpg.Record | None:
    """Replace the app's subscription categories; None when there is no such app."""
    return await pool.fetchrow(
        "UPDATE apps SET subscription_categories = $2 WHERE app_key = $1 RETURNING *",
        app_key,
        categories,
    )


async def get_app(pool: asyncpg.Pool, app_key: str) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM apps WHERE app_key = $1", app_key)


async def put_tag_cap(pool: asyncpg.Pool, tag: str, max_count: int, period_seconds: int) -> None:
    await pool.execute(
        """INSERT INTO tag_caps (tag, max_count, period_seconds) VALUES ($1, $2, $3)
           ON CONFLICT (tag) DO UPDATE
              SET max_count = $2, period_seconds = $3, updated_at = now()""",
        tag,
        max_count,
        period_seconds,
    )


async def list_tag_caps(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT tag, max_count, period_seconds FROM tag_caps ORDER BY tag")


async def delete_tag_cap(pool: asyncpg.Pool, tag: str) -> bool:
    return bool((await pool.execute("DELETE FROM tag_caps WHERE tag = $1", tag)).endswith(" 1"))
