"""SQL of send jobs to contact sources, campaigns, tests and their life cycle."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from shared.topics import bucket_of

# action -> (statuses it may start from, status it leads to)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "start": (("draft",), "scheduled"),
    "pause": (("scheduled", "running"), "paused"),
    "resume": (("paused",), "scheduled"),
    "cancel": (("draft", "scheduled", "running", "paused"), "cancelled"),
}


async def existing_sources(pool: asyncpg.Pool, source_ids: list[int]) -> set[int]:
    rows = await pool.fetch(
        "SELECT id FROM contact_sources WHERE id = ANY($1) AND deleted_at IS NULL", source_ids
    )
    return {r["id"] for r in rows}


async def create_audience_job(pool: asyncpg.Pool, job: dict[str, Any]) -> int | None:
    """A send job whose audience is include sources minus exclude sources. With
    ``job["request"]`` = (request id, request hash) already taken: nothing, None."""
    request_id, request_hash = job.get("request") or (None, None)
    async with pool.acquire() as conn, conn.transaction():
        job_id: int | None = await conn.fetchval(
            """INSERT INTO send_jobs (kind, status, content_id, app_keys, options, name,
                                      message_name, include_sources, exclude_sources,
                                      batch_size, pause_ms, scheduled_at, request_id,
                                      request_hash)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, coalesce($12, now()),
                       $13, $14)
               ON CONFLICT (request_id) WHERE request_id IS NOT NULL DO NOTHING
               RETURNING id""",
            job["kind"], job["status"], job["content_id"], job["app_keys"], job["options"],
            job.get("name"), job.get("message_name"), job["include"], job.get("exclude", []),
            job.get("batch_size", 1000), job.get("pause_ms", 0), job.get("scheduled_at"),
            request_id, request_hash,
        )  # fmt: skip
        if job_id is not None:
            await conn.execute("NOTIFY send_jobs")
    return job_id


async def create_test_job(
    pool: asyncpg.Pool,
    content_id: str,
    app_keys: list[str],
    options: dict[str, Any],
    contact_ids: list[str],
    request: tuple[str, str] | None = None,
) -> int | None:
    request_id, request_hash = request or (None, None)
    async with pool.acquire() as conn, conn.transaction():
        job_id: int | None = await conn.fetchval(
            """INSERT INTO send_jobs (kind, content_id, app_keys, options, is_test,
                                      recipients_total, request_id, request_hash)
               VALUES ('test', $1, $2, $3, true, $4, $5, $6)
               ON CONFLICT (request_id) WHERE request_id IS NOT NULL DO NOTHING
               RETURNING id""",
            content_id, app_keys, options, len(contact_ids), request_id, request_hash,
        )  # fmt: skip
        if job_id is None:
            return None
        await conn.execute(
            """INSERT INTO send_job_recipients (send_job_id, bucket, contact_id)
               SELECT $1, t.bucket, t.contact_id
                 FROM unnest($2::smallint[], $3::text[]) AS t(bucket, contact_id)""",
            job_id, [bucket_of(c) for c in contact_ids], contact_ids,
        )  # fmt: skip
        await conn.execute("NOTIFY send_jobs")
    return job_id


async def transition(
    pool: asyncpg.Pool, job_id: int, action: str, *, start_at: datetime | None = None
) -> tuple[asyncpg.Record | None, str | None]:
    """Apply a life-cycle action; return (the job after it, None) or (None, status now)."""
    allowed, target = TRANSITIONS[action]
    row = await pool.fetchrow(
        """UPDATE send_jobs
              SET status = $3, updated_at = now(),
                  scheduled_at = CASE WHEN $2 = 'start' THEN coalesce($4, now())
                                      ELSE scheduled_at END,
                  cancelled_at = CASE WHEN $3 = 'cancelled' THEN now() ELSE cancelled_at END
            WHERE id = $1 AND status = ANY($5::text[])
        RETURNING *""",
        job_id, action, target, start_at, list(allowed),
    )  # fmt: skip
    if row is not None:
        await pool.execute("NOTIFY send_jobs")
        return row, None
    status: str | None = await pool.fetchval("SELECT status FROM send_jobs WHERE id = $1", job_id)
    return None, status
