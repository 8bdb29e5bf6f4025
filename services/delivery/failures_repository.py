"""SQL for ``delivery_failures``: why a recipient could not be personalized."""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

from shared.events import OutcomeDetail

_INSERT_FAILURES = """
INSERT INTO delivery_failures (send_job_id, contact_id, field, error)
SELECT $1, t.contact_id, t.field, t.error
  FROM unnest($2::text[], $3::text[], $4::text[]) AS t(contact_id, field, error)
ON CONFLICT (send_job_id, contact_id) DO NOTHING
"""


async def insert_failures(
    pool: asyncpg.Pool, job_id: int, failures: Mapping[str, OutcomeDetail]
) -> None:
    """One statement per batch; a redelivered batch records each failure once."""
    if not failures:
        return
    contact_ids = list(failures)
    await pool.execute(
        _INSERT_FAILURES,
        job_id,
        contact_ids,
        [failures[c].field for c in contact_ids],
        [failures[c].error for c in contact_ids],
    )


async def failures_of(pool: asyncpg.Pool, job_id: int) -> dict[str, OutcomeDetail]:
    """A send job's personalization failures by contact (for tools and tests)."""
    rows = await pool.fetch(
        "SELECT contact_id, field, error FROM delivery_failures WHERE send_job_id = $1", job_id
    )
    return {r["contact_id"]: OutcomeDetail(field=r["field"], error=r["error"]) for r in rows}
