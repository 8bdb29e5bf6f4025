"""Send jobs to contact sources (seed ``/sendjobs``), campaigns and test sends."""

from __future__ import annotations

from typing import Any

import asyncpg

from services.publisher.errors import ApiError, field_error
from services.publisher.sends import idempotency, send_limits
from services.publisher.sends.campaigns import repository
from services.publisher.sends.campaigns.models import CreateCampaign, CreateSendJob, TestSend
from services.publisher.sends.idempotency import IdempotentRequest
from services.publisher.sends.models import SendContent
from services.publisher.sends.split import resolve_split
from services.publisher.sends.use_cases import (
    ResolvedMessage,
    check_app_keys,
    resolve_message,
    send_options,
)


async def _check_sources(pool: asyncpg.Pool, ids: list[int], field: str) -> list[int]:
    unique = list(dict.fromkeys(ids))
    missing = sorted(set(unique) - await repository.existing_sources(pool, unique))
    if missing:
        raise field_error(field, f"unknown contact source(s): {', '.join(map(str, missing))}")
    return unique


def _checked_options(
    message: ResolvedMessage, app_keys: list[str], defaults: dict[str, Any], **kwargs: bool
) -> dict[str, Any]:
    options = send_options(message, defaults, **kwargs)
    send_limits.check_fits(message.content_id, message.kind, app_keys, options)
    return options


def _request(request: IdempotentRequest | None) -> dict[str, Any]:
    return {"request": (request.request_id, request.body_hash) if request else None}


async def create_send_job(
    pool: asyncpg.Pool, command: CreateSendJob, request: IdempotentRequest | None = None
) -> int:
    if (replayed := await idempotency.replayed_job(pool, request)) is not None:
        return replayed
    message = await resolve_split(pool, await resolve_message(pool, command.content), command)
    app_keys = await check_app_keys(pool, command.appKeys, "appKeys", message)
    include = await _check_sources(pool, [command.contactSourceId], "contactSourceId")
    options = _checked_options(
        message, app_keys, command.personalizationDefaults, using_app_frequency=False
    )
    job_id = await repository.create_audience_job(
        pool,
        {
            "kind": "contact_source", "status": "scheduled", "content_id": message.content_id,
            "app_keys": app_keys, "include": include, "name": command.campaignName,
            "message_name": command.messageName, "scheduled_at": command.scheduledDate,
            "options": options, **_request(request),
        },
    )  # fmt: skip
    return job_id if job_id is not None else await idempotency.job_of_taken_key(pool, request)


async def create_campaign(
    pool: asyncpg.Pool, command: CreateCampaign, request: IdempotentRequest | None = None
) -> int:
    if (replayed := await idempotency.replayed_job(pool, request)) is not None:
        return replayed
    if command.startNow and command.startAt is not None:
        raise field_error("startAt", "give startNow or startAt, not both")
    message = await resolve_split(pool, await resolve_message(pool, command.content), command)
    app_keys = await check_app_keys(pool, command.appKeys, "appKeys", message)
    include = await _check_sources(pool, command.include, "include")
    exclude = await _check_sources(pool, command.exclude, "exclude")
    options = _checked_options(
        message, app_keys, command.personalizationDefaults,
        using_app_frequency=command.usingAppFrequency,
    )  # fmt: skip
    started = command.startNow or command.startAt is not None
    job_id = await repository.create_audience_job(
        pool,
        {
            "kind": "campaign", "status": "scheduled" if started else "draft",
            "content_id": message.content_id, "app_keys": app_keys, "include": include,
            "exclude": exclude, "name": command.name, "scheduled_at": command.startAt,
            "batch_size": command.batching.recipientsPerBatch,
            "pause_ms": round(command.batching.pauseSeconds * 1000),
            "options": options, **_request(request),
        },
    )  # fmt: skip
    return job_id if job_id is not None else await idempotency.job_of_taken_key(pool, request)


async def test_send(
    pool: asyncpg.Pool,
    content: SendContent,
    command: TestSend,
    request: IdempotentRequest | None = None,
) -> int:
    if (replayed := await idempotency.replayed_job(pool, request)) is not None:
        return replayed
    message = await resolve_message(pool, content)
    app_keys = await check_app_keys(pool, command.appKeys, "appKeys", message)
    options = _checked_options(
        message, app_keys, command.personalizationDefaults,
        using_app_frequency=False, is_test=True,
    )  # fmt: skip
    contact_ids = list(dict.fromkeys(command.contactIds))
    job_id = await repository.create_test_job(
        pool, message.content_id, app_keys, options, contact_ids, **_request(request)
    )
    return job_id if job_id is not None else await idempotency.job_of_taken_key(pool, request)


async def control(pool: asyncpg.Pool, job_id: int, action: str, **kwargs: Any) -> asyncpg.Record:
    row, status = await repository.transition(pool, job_id, action, **kwargs)
    if row is not None:
        return row
    if status is None:
        raise ApiError(404, f"no send job with id {job_id}")
    raise ApiError(409, f"cannot {action} a send job that is {status}")


def job_view(row: asyncpg.Record) -> dict[str, Any]:
    def iso(column: str) -> str | None:
        return row[column].isoformat() if row[column] else None

    return {
        "id": row["id"], "kind": row["kind"], "status": row["status"], "name": row["name"],
        "messageName": row["message_name"], "contentId": row["content_id"],
        "appKeys": row["app_keys"], "include": row["include_sources"],
        "exclude": row["exclude_sources"], "isTest": row["is_test"],
        "batching": {
            "recipientsPerBatch": row["batch_size"], "pauseSeconds": row["pause_ms"] / 1000
        },
        "scheduledAt": iso("scheduled_at"), "launchedAt": iso("launched_at"),
        "completedAt": iso("completed_at"), "cancelledAt": iso("cancelled_at"),
        "recipientsTotal": row["recipients_total"],
        # recipients produced to pigeonhole.sends (delivered or skipped later: see /stats)
        "recipientsProduced": row["recipients_sent"],
        "recipientsSent": row["recipients_sent"],  # deprecated alias for one release (docs/api.md)
        "batchesSent": row["batches_sent"], "error": row["error"],
    }  # fmt: skip
