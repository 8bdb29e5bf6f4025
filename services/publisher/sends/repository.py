"""SQL of direct send jobs: the job and its recipients in one transaction."""

from __future__ import annotations

from typing import Any

import asyncpg

from shared.topics import bucket_of


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
