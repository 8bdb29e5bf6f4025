"""Campaigns, send jobs to contact sources, their life cycle, and test sends."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Request

from services.publisher.auth import Principal, require
from services.publisher.errors import ApiError, envelope
from services.publisher.sends import idempotency, repository
from services.publisher.sends.campaigns import use_cases as campaigns
from services.publisher.sends.campaigns.models import (
    CreateCampaign,
    CreateSendJob,
    StartCampaign,
    TestSend,
)
from services.publisher.sends.models import InAppMessage, InboxMessage, SendContent
from shared.http_limits import BIGINT_MAX

router = APIRouter(tags=["campaigns and send jobs"])
Sender = Annotated[Principal, Depends(require("sends"))]
Action = Literal["pause", "resume", "cancel"]
JobId = Annotated[int, Path(ge=1, le=BIGINT_MAX)]
ContentIdPath = Annotated[str, Path(min_length=1, max_length=64)]


@router.post("/channels/push/sendjobs", status_code=202)
async def create_send_job(body: CreateSendJob, request: Request, _: Sender) -> dict[str, Any]:
    """Send published content to a contact source, now or at ``scheduledDate``. With an
    ``Idempotency-Key``, a retry answers the same job (409 if the body differs)."""
    job_id = await campaigns.create_send_job(
        request.app.state.pool, body, idempotency.from_header(request, "sendjobs", body)
    )
    location = str(request.url_for("get_send_job", job_id=job_id))
    return envelope({"location": location, "id": job_id, "sendJobId": job_id})


@router.get("/channels/push/sendjobs/{job_id}", name="get_send_job")
async def get_send_job(job_id: JobId, request: Request, _: Sender) -> dict[str, Any]:
    """Any send job (direct, to a contact source, campaign, test) with its progress."""
    row = await repository.get_send_job(request.app.state.pool, job_id)
    if row is None:
        raise ApiError(404, f"no send job with id {job_id}")
    return envelope(campaigns.job_view(row))


@router.post("/channels/push/sendjobs/{job_id}/{action}")
async def control_send_job(
    job_id: JobId, action: Action, request: Request, _: Sender
) -> dict[str, Any]:
    """Pause, resume or cancel a send job; a paused job resumes from its checkpoint."""
    row = await campaigns.control(request.app.state.pool, job_id, action)
    return envelope(campaigns.job_view(row))


@router.post("/campaigns", status_code=201)
async def create_campaign(body: CreateCampaign, request: Request, _: Sender) -> dict[str, Any]:
    """Create a campaign. With an ``Idempotency-Key``, a retry answers the same campaign
    (409 if the body differs)."""
    job_id = await campaigns.create_campaign(
        request.app.state.pool, body, idempotency.from_header(request, "campaigns", body)
    )
    row = await repository.get_send_job(request.app.state.pool, job_id)
    assert row is not None
    location = str(request.url_for("get_campaign", campaign_id=job_id))
    return envelope({"location": location, **campaigns.job_view(row)})


async def _campaign(request: Request, campaign_id: int) -> None:
    row = await repository.get_send_job(request.app.state.pool, campaign_id)
    if row is None or row["kind"] != "campaign":
        raise ApiError(404, f"no campaign with id {campaign_id}")


@router.get("/campaigns/{campaign_id}", name="get_campaign")
async def get_campaign(campaign_id: JobId, request: Request, _: Sender) -> dict[str, Any]:
    """Status and live counts."""
    await _campaign(request, campaign_id)
    row = await repository.get_send_job(request.app.state.pool, campaign_id)
    assert row is not None
    return envelope(campaigns.job_view(row))


@router.post("/campaigns/{campaign_id}/start")
async def start_campaign(
    campaign_id: JobId,
    request: Request,
    _: Sender,
    body: Annotated[StartCampaign | None, Body()] = None,
) -> dict[str, Any]:
    """Start a draft now, or at ``startAt``."""
    await _campaign(request, campaign_id)
    row = await campaigns.control(
        request.app.state.pool, campaign_id, "start", start_at=body.startAt if body else None
    )
    return envelope(campaigns.job_view(row))


@router.post("/campaigns/{campaign_id}/{action}")
async def control_campaign(
    campaign_id: JobId, action: Action, request: Request, _: Sender
) -> dict[str, Any]:
    await _campaign(request, campaign_id)
    row = await campaigns.control(request.app.state.pool, campaign_id, action)
    return envelope(campaigns.job_view(row))


@router.post("/appinbox/messages/{content_id}/test", status_code=202)
async def test_inbox_message(
    content_id: ContentIdPath, body: TestSend, request: Request, _: Sender
) -> dict[str, Any]:
    """Send an App Inbox message to a few contacts, marked as a test (``Idempotency-Key``
    as for sends)."""
    content = SendContent(inboxMessage=InboxMessage(inboxContentId=content_id))
    key = idempotency.from_header(request, "test/inbox", body, content_id=content_id)
    job_id = await campaigns.test_send(request.app.state.pool, content, body, key)
    return envelope({"id": job_id, "sendJobId": job_id, "isTest": True})


@router.post("/channels/push/inappcontent/{content_id}/test", status_code=202)
async def test_inapp_content(
    content_id: ContentIdPath, body: TestSend, request: Request, _: Sender
) -> dict[str, Any]:
    """Send in-app content to a few contacts, marked as a test (``Idempotency-Key`` as
    for sends)."""
    content = SendContent(inAppMessage=InAppMessage(inAppContentId=content_id))
    key = idempotency.from_header(request, "test/inapp", body, content_id=content_id)
    job_id = await campaigns.test_send(request.app.state.pool, content, body, key)
    return envelope({"id": job_id, "sendJobId": job_id, "isTest": True})
