"""SQL of contact sources. Membership conditions come from ``audience.source_condition``:
its SQL is the compiler's own fixed fragments, every value a parameter, which is why it
may be spliced into the statements below."""

from __future__ import annotations

from typing import Any

import asyncpg

from shared.audience import Source, source_condition


async def insert_list_source(pool: asyncpg.Pool, name: str, contact_ids: list[str]) -> int:
    """The source and its listed ids in one transaction: either both exist or neither."""
    async with pool.acquire() as conn, conn.transaction():
        source_id: int = await conn.fetchval(
            "INSERT INTO contact_sources (name, kind) VALUES ($1, 'list') RETURNING id", name
        )
        await conn.execute(
            """INSERT INTO contact_source_members (source_id, contact_id)
               SELECT $1, t.contact_id FROM unnest($2::text[]) AS t(contact_id)
               ON CONFLICT DO NOTHING""",
            source_id,
            contact_ids,
        )
    return source_id


async def insert_query_source(pool: asyncpg.Pool, name: str, query: dict[str, Any]) -> int:
    source_id: int = await pool.fetchval(
        "INSERT INTO contact_sources (name, kind, query) VALUES ($1, 'query', $2) RETURNING id",
        name,
        query,
    )
    return source_id


async def get_source(pool: asyncpg.Pool, source_id: int) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT * FROM contact_sources WHERE id = $1 AND deleted_at IS NULL", source_id
    )


async def delete_source(pool: asyncpg.Pool, source_id: int) -> bool:
    """Soft delete: the listed ids stay, so a send already launched on it keeps its audience."""
    result = await pool.execute(
        "UPDATE contact_sources SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL",
        source_id,
    )
    return bool(result.endswith(" 1"))


async def count_members(pool: asyncpg.Pool, source: Source) -> int:
    condition, params = source_condition(source, 1)
    count: int = await pool.fetchval(
        f"SELECT count(*) FROM contacts c WHERE {condition}",
        *params,
    )
    return count


async def count_listed(pool: asyncpg.Pool, source_id: int) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM contact_source_members WHERE source_id = $1", source_id
    )
    return count


async def page_members(
    pool: asyncpg.Pool, source: Source, *, after: str | None, limit: int
) -> list[str]:
    """Member contact ids in contact_id order, after the keyset cursor ``after``."""
    keyset: list[Any] = [] if after is None else [after]
    condition, params = source_condition(source, 2 + len(keyset))
    rows = await pool.fetch(
        f"""SELECT c.contact_id FROM contacts c
             WHERE {condition} {"AND c.contact_id > $2::text" if keyset else ""}
             ORDER BY c.contact_id LIMIT $1::int""",
        limit,
        *keyset,
        *params,
    )
    return [r["contact_id"] for r in rows]
