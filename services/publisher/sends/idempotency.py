"""Idempotency on every way to send.

``Idempotency-Key`` (HTTP: sends, send jobs, campaigns, test sends) and ``event_id``
(Kafka send requests) name a request. The key is bound to a hash of the operation and
its canonical body (the parsed model, so key order, spacing and defaults left out do not
matter): the same key with the same request answers the job it made the first time, the
same key with another request is a 409 naming that job. Keys live on ``send_jobs``
(``request_id`` unique, ``request_hash``) and are written in the job's own transaction,
so a key is never recorded for a job that was not.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import asyncpg
from fastapi import Request
from pydantic import BaseModel

from services.publisher.errors import ApiError
from services.publisher.sends import repository

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 200


@dataclass(frozen=True)
class IdempotentRequest:
    request_id: str  # "http:<Idempotency-Key>" or "kafka:<event_id>"
    body_hash: str

    @property
    def key(self) -> str:
        return self.request_id.split(":", 1)[1]


def body_hash(operation: str, body: BaseModel | None, **extra: Any) -> str:
    document = {
        "operation": operation,
        "body": body.model_dump(mode="json") if body is not None else None,
        **extra,
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def from_header(
    request: Request, operation: str, body: BaseModel | None, **extra: Any
) -> IdempotentRequest | None:
    """The request's idempotency, when it sends an ``Idempotency-Key``."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 0 < len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise ApiError(400, fields={HEADER: f"must be 1..{MAX_KEY_LENGTH} printable characters"})
    return IdempotentRequest(f"http:{key}", body_hash(operation, body, **extra))


def kafka_request(event_id: str, body: BaseModel, using_app_frequency: bool) -> IdempotentRequest:
    return IdempotentRequest(
        f"kafka:{event_id}",
        body_hash("sends", body, using_app_frequency=using_app_frequency),
    )


async def replayed_job(pool: asyncpg.Pool, request: IdempotentRequest | None) -> int | None:
    """The job ``request`` made before, or None if it is new; 409 if its key was used
    for another request."""
    if request is None:
        return None
    row = await repository.find_request(pool, request.request_id)
    if row is None:
        return None
    job_id: int = row["id"]
    if row["request_hash"] is not None and row["request_hash"] != request.body_hash:
        what = "campaign" if row["kind"] == "campaign" else "send job"
        name = HEADER if request.request_id.startswith("http:") else "event_id"
        raise ApiError(
            409,
            fields={
                name: f"{request.key!r} was already used for {what} {job_id} with a "
                "different request; use a new key for a new send"
            },
        )
    return job_id


async def job_of_taken_key(pool: asyncpg.Pool, request: IdempotentRequest | None) -> int:
    """After an insert found the key taken by a concurrent request: that request's job."""
    job_id = await replayed_job(pool, request)
    assert job_id is not None, "the key was taken, so its job exists"
    return job_id
