"""SQL of the scheduler: claiming due jobs under a lease, paging audiences, checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from shared.audience import Source, audience_condition
from shared.events import ContentKind


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: str
    content_id: str
    content_kind: ContentKind
    app_keys: list[str]
    options: dict[str, Any]
    launched_at: datetime
    batch_size: int
    pause_ms: int
    cursor: tuple[int, str]
    batches_sent: int
    # For jobs to contact sources and campaigns: "include minus exclude" as a condition
    # over contacts ``c``, with its parameters numbered from $3.
    audience: tuple[str, list[Any]] | None = None


AUDIENCE_KINDS = ("contact_source", "campaign")


_CLAIM = """
UPDATE send_jobs j
   SET status = 'running', lease_owner = $1, lease_until = now() + make_interval(secs => $2),
       launched_at = coalesce(j.launched_at, now()), updated_at = now()
  FROM contents c
 WHERE c.id = j.content_id
   AND j.id = (SELECT id FROM send_jobs
                WHERE status IN ('scheduled', 'running') AND scheduled_at <= now()
                  AND (lease_until IS NULL OR lease_until < now())
                ORDER BY scheduled_at, id
                LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING j.*, c.kind AS content_kind
"""


async def claim_due_job(pool: asyncpg.Pool, owner: str, lease_seconds: int) -> ClaimedJob | None:
    """Take one due job no live scheduler holds; the lease makes a crashed holder's job
    claimable again once it lapses, and SKIP LOCKED keeps two claimers apart."""
    row = await pool.fetchrow(_CLAIM, owner, float(lease_seconds))
    if row is None:
        return None
    audience = None
    if row["kind"] in AUDIENCE_KINDS:
        include, exclude = await _sources(pool, row["include_sources"], row["exclude_sources"])
        audience = audience_condition(include, exclude, first_param=3)
        if row["recipients_total"] is None:
            condition, params = audience_condition(include, exclude, first_param=2)
            await pool.execute(
                f"""UPDATE send_jobs SET recipients_total =
                        (SELECT count(*) FROM contacts c WHERE {condition})
                     WHERE id = $1""",
                row["id"], *params,
            )  # fmt: skip
    return ClaimedJob(
        id=row["id"],
        kind=row["kind"],
        content_id=row["content_id"],
        content_kind=row["content_kind"],
        app_keys=list(row["app_keys"]),
        options=row["options"],
        launched_at=row["launched_at"],
        batch_size=row["batch_size"],
        pause_ms=row["pause_ms"],
        cursor=(
            row["cursor_bucket"] if row["cursor_bucket"] is not None else -1,
            row["cursor_contact_id"] or "",
        ),
        batches_sent=row["batches_sent"],
        audience=audience,
    )


async def _sources(
    pool: asyncpg.Pool, include: list[int], exclude: list[int]
) -> tuple[list[Source], list[Source]]:
    """Sources as they are now (a deleted source keeps its definition and members)."""
    rows = await pool.fetch(
        "SELECT id, kind, query FROM contact_sources WHERE id = ANY($1)", include + exclude
    )
    found = {r["id"]: Source(r["id"], r["kind"], r["query"]) for r in rows}
    return [found[i] for i in include if i in found], [found[i] for i in exclude if i in found]


async def fetch_audience_page(
    pool: asyncpg.Pool, job: ClaimedJob, after: tuple[int, str], limit: int
) -> list[asyncpg.Record]:
    """The next recipients after the keyset cursor, in (bucket, contact_id) order, as
    (bucket, contact_id, personalization) records (planning's AudienceRow)."""
    if job.audience is not None:
        condition, params = job.audience
        # the condition is the compiler's fixed SQL; every value in it is a parameter
        rows: list[asyncpg.Record] = await pool.fetch(
            f"""SELECT c.bucket, c.contact_id, NULL::jsonb FROM contacts c
                 WHERE (c.bucket, c.contact_id) > ($1::smallint, $2::text) AND {condition}
                 ORDER BY c.bucket, c.contact_id LIMIT ${3 + len(params)}""",
            after[0], after[1], *params, limit,
        )  # fmt: skip
        return rows
    rows = await pool.fetch(
        """SELECT bucket, contact_id, personalization FROM send_job_recipients
            WHERE send_job_id = $1 AND (bucket, contact_id) > ($2::smallint, $3::text)
            ORDER BY bucket, contact_id LIMIT $4""",
        job.id,
        after[0],
        after[1],
        limit,
    )
    return rows


async def checkpoint(
    pool: asyncpg.Pool,
    job_id: int,
    owner: str,
    lease_seconds: float,
    cursor: tuple[int, str],
    *,
    recipients: int,
    batches: int,
) -> str | None:
    """Record acknowledged batches (the cursor is the last one's last recipient) and renew
    the lease; return the job's status now (an operator may have paused or cancelled it),
    or None if the lease was lost."""
    status: str | None = await pool.fetchval(
        """UPDATE send_jobs
              SET cursor_bucket = $3, cursor_contact_id = $4,
                  batches_sent = batches_sent + $5, recipients_sent = recipients_sent + $6,
                  lease_until = now() + make_interval(secs => $7), updated_at = now()
            WHERE id = $1 AND lease_owner = $2
        RETURNING status""",
        job_id,
        owner,
        cursor[0],
        cursor[1],
        batches,
        recipients,
        float(lease_seconds),
    )
    return status


async def status(pool: asyncpg.Pool, job_id: int) -> str | None:
    value: str | None = await pool.fetchval("SELECT status FROM send_jobs WHERE id = $1", job_id)
    return value


async def finish(pool: asyncpg.Pool, job_id: int, owner: str) -> None:
    await pool.execute(
        """UPDATE send_jobs SET status = 'completed', completed_at = now(), lease_owner = NULL,
                  lease_until = NULL, updated_at = now()
            WHERE id = $1 AND lease_owner = $2 AND status = 'running'""",
        job_id,
        owner,
    )


async def release(pool: asyncpg.Pool, job_id: int, owner: str) -> None:
    await pool.execute(
        """UPDATE send_jobs SET lease_owner = NULL, lease_until = NULL
            WHERE id = $1 AND lease_owner = $2""",
        job_id,
        owner,
    )


async def fail(pool: asyncpg.Pool, job_id: int, owner: str, error: str) -> None:
    """A job that can never finish (a batch Kafka will never take): failed, with the error
    an operator reads in GET /channels/push/sendjobs/{id}, and never claimed again."""
    await pool.execute(
        """UPDATE send_jobs SET status = 'failed', error = $3, lease_owner = NULL,
                  lease_until = NULL, updated_at = now()
            WHERE id = $1 AND lease_owner = $2""",
        job_id,
        owner,
        error[:2000],
    )
