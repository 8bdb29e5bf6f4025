"""Kafka events -> webhook outbox rows (docs/webhooks.md, "How it works").

Per poll: one query for the enabled endpoints, one for the send jobs' apps, then set-based
inserts; the consumer commits its offsets only after, so a crash loses nothing, and
(endpoint, event id) is unique, so a re-read poll adds nothing. Events whose id is derived
from the job and contact (delivered, skipped, withdrawn) stay the same across a replayed
batch, so a receiver can deduplicate by ``id``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import asyncpg
import orjson
from pydantic import BaseModel, ValidationError

from services.publisher.ingest.record_handling import Record
from shared.events import BatchDelivered, MessageEngaged, MessagesWithdrawn
from shared.http_limits import BIGINT_MAX

log = logging.getLogger(__name__)
EVENT_TYPES = ("delivered", "skipped", "engaged", "withdrawn")
CHUNK = 5000
WebhookEvent = dict[str, Any]


def _id(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:32]


def delivery_events(event: BatchDelivered) -> Iterator[tuple[int, WebhookEvent]]:
    for outcome in event.outcomes:
        data: dict[str, Any] = {
            "jobId": event.job_id, "contentId": event.content_id,
            "contactId": outcome.contact_id, "isTest": event.is_test,
        }  # fmt: skip
        if outcome.variant is not None:
            data["variant"] = outcome.variant
        if outcome.outcome == "skipped":
            data["reason"] = outcome.reason
            if outcome.detail is not None:
                data["detail"] = outcome.detail.model_dump()
        yield event.job_id, _event(
            _id(outcome.outcome, event.job_id, outcome.contact_id),
            outcome.outcome, event, data,
        )  # fmt: skip


def engagement_events(event: MessageEngaged) -> Iterator[tuple[int, WebhookEvent]]:
    data = {
        "jobId": event.job_id, "contentId": event.content_id, "contactId": event.contact_id,
        "messageId": event.message_id, "action": event.type, "at": event.at.isoformat(),
    }  # fmt: skip
    yield event.job_id, _event(_id("engaged", event.event_id), "engaged", event, data)


def withdrawn_events(event: MessagesWithdrawn) -> Iterator[tuple[int, WebhookEvent]]:
    for contact_id in event.contact_ids:
        data = {"jobId": event.job_id, "contentId": event.content_id, "contactId": contact_id}
        if event.reason is not None:
            data["reason"] = event.reason
        yield (
            event.job_id,
            _event(_id("withdrawn", event.job_id, contact_id), "withdrawn", event, data),
        )


def _event(event_id: str, kind: str, source: Any, data: dict[str, Any]) -> WebhookEvent:
    return {
        "id": event_id, "type": kind,
        "occurredAt": source.occurred_at.isoformat(), "data": data,
    }  # fmt: skip


def decoded(records: Iterable[Record], model: type[BaseModel]) -> Iterator[Any]:
    """What decodes; the rest is the stats consumer's to dead-letter, not ours."""
    for record in records:
        try:
            yield model.model_validate_json(record.value or b"")
        except ValidationError:
            continue


async def enqueue(pool: asyncpg.Pool, events: Iterable[tuple[int, WebhookEvent]]) -> int:
    """Outbox rows for every endpoint that wants each event; the number written."""
    endpoints = await pool.fetch(
        "SELECT id, app_key, event_types FROM webhook_endpoints WHERE enabled"
    )
    if not endpoints:
        return 0
    pending = list(events)
    apps = await _apps_of_jobs(pool, {job for job, _ in pending})
    wanted: dict[tuple[str, str], list[int]] = {}
    for row in endpoints:
        for kind in row["event_types"]:
            wanted.setdefault((row["app_key"], kind), []).append(row["id"])
    rows: list[tuple[int, str, str]] = []
    written = 0
    for job, event in pending:
        for app_key in apps.get(job, ()):
            for endpoint in wanted.get((app_key, event["type"]), ()):
                if body := _storable({**event, "appKey": app_key}):
                    rows.append((endpoint, event["id"], body))
        if len(rows) >= CHUNK:
            written += await _insert(pool, rows)
            rows = []
    return written + (await _insert(pool, rows) if rows else 0)


def _storable(event: WebhookEvent) -> str | None:
    """The event as JSON PostgreSQL takes, or None (logged): one bad event costs itself."""
    try:
        body = orjson.dumps(event).decode()
    except orjson.JSONEncodeError:  # a lone surrogate
        body = None
    if body is None or _has_nul(event):  # jsonb refuses NUL
        log.warning("webhook event not storable, left out", extra={"event_id": event["id"]})
        return None
    return body


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


async def _apps_of_jobs(pool: asyncpg.Pool, jobs: set[int]) -> dict[int, list[str]]:
    known = sorted(job for job in jobs if 0 < job <= BIGINT_MAX)
    rows = await pool.fetch(
        "SELECT id, app_keys FROM send_jobs WHERE id = ANY($1::bigint[])", known
    )
    return {row["id"]: list(row["app_keys"]) for row in rows}


async def _insert(pool: asyncpg.Pool, rows: list[tuple[int, str, str]]) -> int:
    endpoint_ids, event_ids, bodies = zip(*rows, strict=True)
    result: str = await pool.execute(
        """INSERT INTO webhook_outbox (endpoint_id, event_id, event)
           SELECT e, i, b::jsonb FROM unnest($1::bigint[], $2::text[], $3::text[]) AS t(e, i, b)
           ON CONFLICT (endpoint_id, event_id) DO NOTHING""",
        list(endpoint_ids), list(event_ids), list(bodies),
    )  # fmt: skip
    return int(result.rsplit(" ", 1)[-1])
