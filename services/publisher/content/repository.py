"""SQL of contents (in-app content and App Inbox messages)."""

from __future__ import annotations

import secrets
from typing import Any

import asyncpg

_INSERT_CONTENT = """
INSERT INTO contents (id, kind, name, body, personalization_defaults, personalization_formulas,
                      category, tags, ttl_seconds)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""


def new_content_id() -> str:
    """Short, random, URL-safe (8 characters, 48 bits), like the seed's ``MqU8NG7y``."""
    return secrets.token_urlsafe(6)


async def insert_content(pool: asyncpg.Pool, kind: str, row: dict[str, Any]) -> str:
    for _ in range(5):
        content_id = new_content_id()
        try:
            await pool.execute(
                _INSERT_CONTENT,
                content_id,
                kind,
                row.get("name"),
                row["body"],
                row.get("personalization_defaults") or {},
                row.get("personalization_formulas") or {},
                row.get("category"),
                row.get("tags") or [],
                row.get("ttl_seconds"),
            )
            return content_id
        except asyncpg.UniqueViolationError:
            continue
    raise RuntimeError("could not allocate a unique content id")


async def get_content(pool: asyncpg.Pool, content_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT * FROM contents WHERE id = $1 AND deleted_at IS NULL", content_id
    )


async def list_contents(
    pool: asyncpg.Pool, kind: str, *, after: str | None, limit: int, tag: str | None
) -> list[asyncpg.Record]:
    return await pool.fetch(
        """SELECT * FROM contents
           WHERE kind = $1 AND deleted_at IS NULL
             AND ($2::text IS NULL OR id > $2)
             AND ($3::text IS NULL OR tags @> ARRAY[$3])
           ORDER BY id LIMIT $4""",
        kind,
        after,
        tag,
        limit,
    )


async def delete_content(pool: asyncpg.Pool, kind: str, content_id: str) -> bool:
    result = await pool.execute(
        "UPDATE contents SET deleted_at = now() WHERE id = $1 AND kind = $2 AND deleted_at IS NULL",
        content_id,
        kind,
    )
    return bool(result.endswith(" 1"))
