"""Statistics by campaign, send job, content or tag, fed from Kafka.

- ``pigeonhole.deliveries`` (BatchDelivered): applied once per event id, counted per send
  job and outcome. ``duplicate`` means the contact already had this job's message (a batch
  delivered again after a crash), so it counts as delivered: the message is in the inbox.
- ``pigeonhole.engagement`` (MessageEngaged): one row per message and type, so "viewed"
  is the number of messages viewed at least once, whatever the number of views.

Test sends are left out of every figure.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

import asyncpg

from shared.events import BatchDelivered, MessageEngaged

Scope = Literal["sendJobId", "campaignId", "contentId", "tag"]
SKIP_REASONS = ("unknown_contact", "expired", "unsubscribed", "frequency_capped", "unknown_content",
                "personalization_failed", "holdout")  # fmt: skip


async def known_jobs(pool: asyncpg.Pool, job_ids: list[int]) -> set[int]:
    """The send jobs among ``job_ids`` that exist: an event naming another is dead-lettered."""
    if not job_ids:
        return set()
    rows = await pool.fetch("SELECT id FROM send_jobs WHERE id = ANY($1::bigint[])", job_ids)
    return {r["id"] for r in rows}


async def apply_deliveries(pool: asyncpg.Pool, events: list[BatchDelivered]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        new = {
            r["event_id"]
            for r in await conn.fetch(
                """INSERT INTO stats_applied_events (event_id) SELECT unnest($1::text[])
                   ON CONFLICT DO NOTHING RETURNING event_id""",
                [e.event_id for e in events],
            )
        }
        counts: Counter[tuple[int, str, str]] = Counter()
        by_variant: Counter[tuple[int, str, str]] = Counter()
        for event in events:
            if event.event_id not in new or event.is_test:
                continue
            new.discard(event.event_id)  # the same event twice in one poll counts once
            for o in event.outcomes:
                outcome = (
                    "delivered" if o.outcome == "delivered" or o.reason == "duplicate" else o.reason
                )
                counts[(event.job_id, event.content_id, str(outcome))] += 1
                if o.variant is not None:
                    by_variant[(event.job_id, o.variant, str(outcome))] += 1
        await _add_variant_counts(conn, by_variant)
        if counts:
            keys = list(counts)
            await conn.execute(
                """INSERT INTO stats_outcomes (send_job_id, content_id, outcome, count)
                   SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[])
                   ON CONFLICT (send_job_id, outcome)
                   DO UPDATE SET count = stats_outcomes.count + EXCLUDED.count""",
                [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
                [counts[k] for k in keys],
            )  # fmt: skip


async def _add_variant_counts(conn: Any, counts: Counter[tuple[int, str, str]]) -> None:
    if not counts:
        return
    keys = list(counts)
    await conn.execute(
        """INSERT INTO stats_variant_outcomes (send_job_id, variant, outcome, count)
           SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[])
           ON CONFLICT (send_job_id, variant, outcome)
           DO UPDATE SET count = stats_variant_outcomes.count + EXCLUDED.count""",
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
        [counts[k] for k in keys],
    )  # fmt: skip


async def apply_engagement(pool: asyncpg.Pool, events: list[MessageEngaged]) -> None:
    if not events:
        return
    await pool.execute(
        """INSERT INTO stats_engagement (send_job_id, content_id, message_id, type, first_at)
           SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],
                                $5::timestamptz[])
           ON CONFLICT (message_id, type) DO NOTHING""",
        [e.job_id for e in events], [e.content_id for e in events],
        [e.message_id for e in events], [e.type for e in events], [e.at for e in events],
    )  # fmt: skip


_FILTERS: dict[Scope, str] = {
    "sendJobId": "s.send_job_id = $1::bigint",
    "campaignId": "s.send_job_id = $1::bigint",
    "contentId": "s.content_id = $1",
    "tag": "s.content_id IN (SELECT id FROM contents WHERE tags @> ARRAY[$1::text])",
}


async def query(pool: asyncpg.Pool, scope: Scope, value: int | str) -> dict[str, Any]:
    where = _FILTERS[scope]  # a fixed fragment chosen by scope; the value is a parameter
    not_test = "NOT EXISTS (SELECT 1 FROM send_jobs j WHERE j.id = s.send_job_id AND j.is_test)"
    outcomes = await pool.fetch(
        f"SELECT outcome, sum(count)::bigint AS n FROM stats_outcomes s "
        f"WHERE {where} AND {not_test} GROUP BY outcome",
        value,
    )
    engagement = await pool.fetch(
        f"SELECT type, count(*) AS n FROM stats_engagement s "
        f"WHERE {where} AND {not_test} GROUP BY type",
        value,
    )
    summary = _summary(
        {r["outcome"]: r["n"] for r in outcomes}, {r["type"]: r["n"] for r in engagement}
    )
    result = {scope: value, **summary}
    if scope in ("sendJobId", "campaignId"):
        variants = await _by_variant(pool, int(value))
        if variants:
            result["variants"] = variants
    return result


def _summary(by_outcome: dict[str, int], by_type: dict[str, int]) -> dict[str, Any]:
    return {
        "targeted": sum(by_outcome.values()),
        "delivered": by_outcome.get("delivered", 0),
        "skipped": {reason: by_outcome.get(reason, 0) for reason in SKIP_REASONS},
        "viewed": by_type.get("view", 0),
        "clicked": by_type.get("click", 0),
        "dismissed": by_type.get("dismiss", 0),
        "read": by_type.get("read", 0),
        "unread": by_type.get("unread", 0),
        "archived": by_type.get("archive", 0),
        "pinned": by_type.get("pin", 0),
        "deleted": by_type.get("delete", 0),
    }


async def _by_variant(pool: asyncpg.Pool, job_id: int) -> list[dict[str, Any]]:
    """An A/B job's figures per variant, then the holdout's ([] for other jobs). Each
    variant sends its own content, so its engagement is the job's for that content."""
    job = await pool.fetchrow(
        "SELECT content_id, options, is_test FROM send_jobs WHERE id = $1", job_id
    )
    if job is None or job["is_test"] or not (job["options"] or {}).get("variants"):
        return []
    outcomes: dict[str, dict[str, int]] = {}
    for r in await pool.fetch(
        "SELECT variant, outcome, count FROM stats_variant_outcomes WHERE send_job_id = $1", job_id
    ):
        outcomes.setdefault(r["variant"], {})[r["outcome"]] = r["count"]
    engagement: dict[str, dict[str, int]] = {}
    for r in await pool.fetch(
        """SELECT content_id, type, count(*) AS n FROM stats_engagement
            WHERE send_job_id = $1 GROUP BY content_id, type""",
        job_id,
    ):
        engagement.setdefault(r["content_id"], {})[r["type"]] = r["n"]
    options = job["options"]
    shown = []
    for variant in options["variants"]:
        content_id = variant.get("content_id") or job["content_id"]
        figures = _summary(outcomes.get(variant["name"], {}), engagement.get(content_id, {}))
        shown.append(
            {"name": variant["name"], "percent": variant["percent"], "contentId": content_id,
             **figures}
        )  # fmt: skip
    holdout = outcomes.get("holdout", {})
    shown.append(
        {"name": "holdout", "percent": options.get("holdout_percent", 0), "contentId": None,
         "targeted": sum(holdout.values())}
    )  # fmt: skip
    return shown
