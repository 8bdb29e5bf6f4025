"""The device API: phone home, engagement events, preferences, stream tickets, the SDK
(the App Inbox calls are in inbox_routes.py)."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response

from services.sync import events, metrics, notify, phone_home, preferences, stream
from services.sync.auth import Device, authenticate

router = APIRouter()
SDK_DIR = FilePath(__file__).parent / "static" / "sdk"
# The web SDK (built from sdk/web by esbuild): the ES module, the classic script, and
# /sdk/inbox.js, the first script's address, kept for pages that still load it.
SDK = {
    "pigeonhole.mjs": (SDK_DIR / "pigeonhole.mjs").read_bytes(),
    "pigeonhole.js": (SDK_DIR / "pigeonhole.js").read_bytes(),
}
SDK["inbox.js"] = SDK["pigeonhole.js"]
SDK_HEADERS = {
    "Cache-Control": "public, max-age=300",
    # a page on any origin loads it (an ES module is fetched with CORS)
    "Access-Control-Allow-Origin": "*",
    "X-Content-Type-Options": "nosniff",
}
AuthenticatedDevice = Annotated[Device, Depends(authenticate)]


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
        await notify.engagement(request, device, applied)

    try:
        applied = await events.record(
            request.app.state.pool, device.contact_id, body.events, publish
        )
    except events.UnknownMessages as exc:
        raise HTTPException(404, str(exc)) from exc
    if applied:
        await notify.inbox_changed(request, device)
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


@router.get("/sdk/{name}", include_in_schema=False)
async def sdk(name: Annotated[str, Path(max_length=40)]) -> Response:
    """The web SDK: ``pigeonhole.mjs`` (ES module), ``pigeonhole.js`` (classic script) and
    ``inbox.js`` (the classic script at the first script's address)."""
    body = SDK.get(name)
    if body is None:
        raise HTTPException(404, f"no SDK file {name!r}: pigeonhole.mjs or pigeonhole.js")
    return Response(body, media_type="text/javascript; charset=utf-8", headers=SDK_HEADERS)
