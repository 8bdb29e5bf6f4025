"""The device API: phone home, engagement events, App Inbox."""

from __future__ import annotations

import asyncio
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response

from services.sync import events, inbox, metrics, phone_home, preferences, stream
from services.sync.auth import Device, authenticate
from shared.events import MessageEngaged
from shared.http_limits import BIGINT_MAX
from shared.inbox_signals import publish_changes
from shared.redis_keys import bump_inbox_versions
from shared.topics import ENGAGEMENT

router = APIRouter()
SDK = (FilePath(__file__).parent / "static" / "inbox.js").read_bytes()
AuthenticatedDevice = Annotated[Device, Depends(authenticate)]
MessageId = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="the inbox entry id")]


async def _publish(request: Request, device: Device, applied: list[events.Applied]) -> None:
    """Engagement for statistics, keyed by contact: sent and acknowledged, or raise."""
    producer = request.app.state.producer
    sent = [
        await producer.send(
            ENGAGEMENT.name,
            MessageEngaged(
                event_id=a.event_id, contact_id=device.contact_id, message_id=a.message_id,
                job_id=a.job_id, content_id=a.content_id, type=a.type, at=a.at,
            ).model_dump_json().encode(),
            key=device.contact_id.encode(),
        )
        for a in applied
    ]  # fmt: skip
    await asyncio.gather(*sent)


async def _changed(request: Request, device: Device) -> None:
    """The contact's inbox changed: a new version for phone homes, a wake for its streams
    (the device's other sessions)."""
    await bump_inbox_versions(request.app.state.redis, [device.contact_id])
    await publish_changes(request.app.state.redis, [device.contact_id])


@router.post("/v1/sync")
async def sync(body: phone_home.SyncRequest, request: Request, device: AuthenticatedDevice) -> Any:
    """The phone home: pending in-app messages for this platform, or "nothing new"."""
    answer = await phone_home.sync_body(
        request.app.state.pool, request.app.state.versions, device, body.platform, body.cursor
    )
    # serialized directly: FastAPI's generic encoder is slow for a page of messages
    return Response(answer, media_type="application/json")


@router.post("/v1/events")
async def report_events(
    body: events.EventBatch, request: Request, device: AuthenticatedDevice
) -> dict[str, Any]:
    """Views, clicks, dismissals, reads and deletions; a repeated ``eventId`` is ignored."""

    async def publish(applied: list[events.Applied]) -> None:
        await _publish(request, device, applied)

    try:
        applied = await events.record(
            request.app.state.pool, device.contact_id, body.events, publish
        )
    except events.UnknownMessages as exc:
        raise HTTPException(404, str(exc)) from exc
    if applied:
        await _changed(request, device)
    accepted = {a.event_id.split(":", 1)[1] for a in applied}
    for event in body.events:
        metrics.EVENTS.labels(
            event.type, "accepted" if event.eventId in accepted else "duplicate"
        ).inc()
    return {
        "accepted": len(accepted),
        "duplicates": len(body.events) - len(accepted),
        "results": {
            e.eventId: "accepted" if e.eventId in accepted else "duplicate" for e in body.events
        },
    }


@router.get("/v1/inbox")
async def list_inbox(
    request: Request,
    device: AuthenticatedDevice,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
    limit: Annotated[int, Query(ge=1, le=inbox.MAX_PAGE)] = 20,
) -> dict[str, Any]:
    """Newest first; pass ``nextCursor`` back as ``cursor`` for the next page."""
    rows = await inbox.page(
        request.app.state.pool, device.contact_id, device.app.app_key,
        int(cursor) if cursor else None, limit + 1,
    )  # fmt: skip
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "messages": [inbox.entry_view(r) for r in rows],
        "nextCursor": str(rows[-1]["id"]) if more else None,
    }


@router.get("/v1/inbox/unread-count")
async def unread_count(request: Request, device: AuthenticatedDevice) -> dict[str, int]:
    count = await inbox.unread_count(request.app.state.pool, device.contact_id, device.app.app_key)
    return {"unreadCount": count}


async def _mark(request: Request, device: Device, message_id: int, kind: str) -> dict[str, Any]:
    column = {"read": "read_at", "delete": "deleted_at"}[kind]
    row = await inbox.mark(
        request.app.state.pool, device.contact_id, device.app.app_key, message_id, column
    )
    if row is None:
        raise HTTPException(404, f"no inbox message {message_id}")
    applied = events.Applied(
        f"{device.contact_id}:{kind}:{message_id}", str(message_id), kind, row["at"],
        row["send_job_id"], row["content_id"],
    )  # fmt: skip
    await _publish(request, device, [applied])
    await _changed(request, device)
    return {"id": str(message_id), kind: True}


@router.post("/v1/inbox/{message_id}/read")
async def read(
    message_id: MessageId, request: Request, device: AuthenticatedDevice
) -> dict[str, Any]:
    return await _mark(request, device, message_id, "read")


@router.delete("/v1/inbox/{message_id}")
async def delete(
    message_id: MessageId, request: Request, device: AuthenticatedDevice
) -> dict[str, Any]:
    return await _mark(request, device, message_id, "delete")


@router.get("/v1/preferences")
async def get_preferences(request: Request, device: AuthenticatedDevice) -> dict[str, Any]:
    """The app's subscription categories, each with the contact's choice."""
    return await preferences.read(request.app.state.pool, device.app.app_key, device.contact_id)


@router.put("/v1/preferences")
async def put_preferences(
    body: preferences.PutPreferences, request: Request, device: AuthenticatedDevice
) -> dict[str, Any]:
    """Opt the contact in (``true``) or out (``false``) of the app's categories named."""
    try:
        return await preferences.change(
            request.app.state.pool, request.app.state.producer, device.app.app_key,
            device.contact_id, body,
        )  # fmt: skip
    except preferences.UndeclaredCategories as exc:
        detail = [
            {"loc": ["body", "subscriptions", name[:100]], "msg": "not a category of this app",
             "type": "value_error"}
            for name in exc.names
        ]  # fmt: skip
        raise HTTPException(422, detail) from exc


@router.post("/v1/stream/ticket")
async def stream_ticket(device: AuthenticatedDevice) -> dict[str, Any]:
    """A one-time ticket for ``GET /v1/stream?ticket=`` (EventSource cannot send headers),
    valid for 60 seconds."""
    return stream.issue_ticket(device)


@router.get(
    stream.PATH,
    response_class=Response,
    responses={200: {"content": {"text/event-stream": {}}, "description": "the event stream"}},
)
async def live_stream(
    ticket: Annotated[str | None, Query(max_length=4096)] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    """Server-Sent Events: ``changed`` (``id`` = inbox version; data ``version``,
    ``inboxUnreadCount``) whenever the contact's inbox changes, heartbeats between.
    Authenticated by the device headers or a ``ticket``; resumes from ``Last-Event-ID``.

    A GET is answered by ``DeviceApi`` before routing (services/sync/stream.py): this
    route documents it, and answers what else reaches it (a HEAD)."""
    raise HTTPException(405, "the stream answers GET only", headers={"Allow": "GET"})


@router.get("/sdk/inbox.js", include_in_schema=False)
async def sdk() -> Response:
    """The web tracking script that renders the App Inbox in a page."""
    return Response(
        SDK, media_type="application/javascript",
        headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
    )  # fmt: skip
