"""/channels/push/sends: send published content to named contacts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from services.publisher.auth import Principal, require
from services.publisher.errors import envelope
from services.publisher.sends import idempotency, use_cases
from services.publisher.sends.models import CreateSend

router = APIRouter(tags=["sends"])
Sender = Annotated[Principal, Depends(require("sends"))]


async def _accept(
    request: Request, body: CreateSend, using_app_frequency: bool, operation: str
) -> dict[str, Any]:
    """An ``Idempotency-Key`` header makes retries safe: the same key with the same body
    answers the same job; with another body, 409 naming the job the key belongs to."""
    job_id = await use_cases.create_send(
        request.app.state.pool,
        body,
        using_app_frequency=using_app_frequency,
        request=idempotency.from_header(request, operation, body),
    )
    location = str(request.url_for("get_send_job", job_id=job_id))
    return envelope({"location": location, "id": job_id, "sendJobId": job_id})


@router.post("/channels/push/sends", status_code=202)
async def send(body: CreateSend, request: Request, _: Sender) -> dict[str, Any]:
    return await _accept(request, body, using_app_frequency=False, operation="sends")


@router.post("/channels/push/sends/usingAppFrequency", status_code=202)
@router.post("/channels/push/sends/useAppFrequency", status_code=202, include_in_schema=False)
async def send_using_app_frequency(body: CreateSend, request: Request, _: Sender) -> dict[str, Any]:
    """Like /sends, but checked against and counted toward the app's frequency limits."""
    return await _accept(
        request, body, using_app_frequency=True, operation="sends/usingAppFrequency"
    )
