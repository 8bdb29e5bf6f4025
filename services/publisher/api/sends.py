"""/channels/push/sends: send published content to named contacts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from services.publisher import handlers
from services.publisher.auth import Principal, require
from services.publisher.errors import ApiError, envelope
from services.publisher.models import CreateSend

router = APIRouter(tags=["sends"])
Sender = Annotated[Principal, Depends(require("sends"))]


async def _accept(request: Request, body: CreateSend, using_app_frequency: bool) -> dict[str, Any]:
    """An ``Idempotency-Key`` header makes retries safe: the same key answers the same job."""
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= 200:
        raise ApiError(400, "Idempotency-Key must be 1..200 characters")
    job_id = await handlers.create_send(
        request.app.state.pool,
        body,
        using_app_frequency=using_app_frequency,
        request_id=f"http:{key}" if key else None,
    )
    location = str(request.url_for("get_send_job", job_id=job_id))
    return envelope({"location": location, "id": job_id, "sendJobId": job_id})


@router.post("/channels/push/sends", status_code=202)
async def send(body: CreateSend, request: Request, _: Sender) -> dict[str, Any]:
    return await _accept(request, body, using_app_frequency=False)


@router.post("/channels/push/sends/usingAppFrequency", status_code=202)
@router.post("/channels/push/sends/useAppFrequency", status_code=202, include_in_schema=False)
async def send_using_app_frequency(body: CreateSend, request: Request, _: Sender) -> dict[str, Any]:
    """Like /sends, but checked against and counted toward the app's frequency limits."""
    return await _accept(request, body, using_app_frequency=True)
