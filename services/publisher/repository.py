"""SQL of the publisher. Every function takes a pool or connection; no SQL lives elsewhere."""

from __future__ import annotations

import secrets
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.topics import bucket_of

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


async def get_app(pool: asyncpg.Pool, app_key: str) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM apps WHERE app_key = $1", app_key)


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


async def create_direct_send_job(
    pool: asyncpg.Pool,
    *,
    content_id: str,
    app_keys: list[str],
    options: dict[str, Any],
    recipients: dict[str, dict[str, Any]],
    request: tuple[str, str] | None = None,
) -> int | None:
    """Persist a send job and its recipients in one transaction, then wake the schedulers.
    ``request`` is its (request id, request hash); when that request id is already taken,
    write nothing and return None."""
    request_id, request_hash = request or (None, None)
    async with pool.acquire() as conn, conn.transaction():
        job_id: int | None = await conn.fetchval(
            """INSERT INTO send_jobs (kind, content_id, app_keys, options, recipients_total,
                                      request_id, request_hash)
               VALUES ('direct', $1, $2, $3, $4, $5, $6)
               ON CONFLICT (request_id) WHERE request_id IS NOT NULL DO NOTHING
               RETURNING id""",
            content_id,
            app_keys,
            options,
            len(recipients),
            request_id,
            request_hash,
        )
        if job_id is None:
            return None
        contact_ids = list(recipients)
        await conn.execute(
            """INSERT INTO send_job_recipients (send_job_id, bucket, contact_id, personalization)
               SELECT $1, t.bucket, t.contact_id, t.personalization
                 FROM unnest($2::smallint[], $3::text[], $4::jsonb[])
                      AS t(bucket, contact_id, personalization)""",
            job_id,
            [bucket_of(c) for c in contact_ids],
            contact_ids,
            [recipients[c] for c in contact_ids],
        )
        await conn.execute("NOTIFY send_jobs")
    return job_id


async def find_request(pool: asyncpg.Pool, request_id: str) -> asyncpg.Record | None:
    """The send job an idempotency key (``request_id``) made, with the request's hash."""
    return await pool.fetchrow(
        "SELECT id, kind, request_hash FROM send_jobs WHERE request_id = $1", request_id
    )


async def get_send_job(pool: asyncpg.Pool, job_id: int) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM send_jobs WHERE id = $1", job_id)


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
