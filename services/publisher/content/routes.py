"""/channels/push/inappcontent (in-app content), /appinbox/messages (App Inbox messages)
and /media (uploaded images): publish, read, list and delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from services.publisher.auth import Principal, require
from services.publisher.content import media, repository, use_cases
from services.publisher.content.models import CreateInAppContent, CreateInboxMessage
from services.publisher.errors import ApiError, envelope

inapp = APIRouter(prefix="/channels/push/inappcontent", tags=["in-app content"])
inbox = APIRouter(tags=["App Inbox"])
media_router = APIRouter(tags=["media"])
Writer = Annotated[Principal, Depends(require("content"))]
# In-app content and App Inbox messages are both contents, told apart by kind: the two
# route sets differ only in paths, names and this word for a missing one.
_NOT_FOUND = {
    "inapp": "no in-app content with id {!r}",
    "inbox": "no App Inbox message with id {!r}",
}


async def _one(request: Request, kind: str, content_id: str) -> dict[str, Any]:
    row = await repository.get_content(request.app.state.pool, content_id)
    if row is None or row["kind"] != kind:
        raise ApiError(404, _NOT_FOUND[kind].format(content_id))
    return envelope(use_cases.content_view(row))


async def _page(
    request: Request, kind: str, limit: int, after: str | None, tag: str | None
) -> dict[str, Any]:
    rows = await repository.list_contents(
        request.app.state.pool, kind, after=after, limit=limit + 1, tag=tag
    )
    next_url = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_url = str(request.url.include_query_params(after=rows[-1]["id"]))
    return envelope([use_cases.content_view(r) for r in rows], next_page_url=next_url)


async def _delete(request: Request, kind: str, content_id: str) -> dict[str, Any]:
    if not await repository.delete_content(request.app.state.pool, kind, content_id):
        raise ApiError(404, _NOT_FOUND[kind].format(content_id))
    return envelope({"id": content_id, "deleted": True})


@inapp.post("", status_code=201)
async def publish_inapp_content(
    body: CreateInAppContent, request: Request, _: Writer
) -> dict[str, Any]:
    content_id = await use_cases.publish_inapp_content(request.app.state.pool, body)
    location = str(request.url_for("get_inapp_content", content_id=content_id))
    return envelope({"location": location, "id": content_id})


@inapp.get("/{content_id}", name="get_inapp_content")
async def get_inapp_content(content_id: str, request: Request, _: Writer) -> dict[str, Any]:
    return await _one(request, "inapp", content_id)


@inapp.get("")
async def list_inapp_content(
    request: Request,
    _: Writer,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after: Annotated[str | None, Query(max_length=64)] = None,
    tag: Annotated[str | None, Query(max_length=100)] = None,
) -> dict[str, Any]:
    return await _page(request, "inapp", limit, after, tag)


@inapp.delete("/{content_id}")
async def delete_inapp_content(content_id: str, request: Request, _: Writer) -> dict[str, Any]:
    return await _delete(request, "inapp", content_id)


@inbox.post("/appinbox/messages", status_code=201)
async def publish_inbox_message(
    body: CreateInboxMessage, request: Request, _: Writer
) -> dict[str, Any]:
    content_id = await use_cases.publish_inbox_message(request.app.state.pool, body)
    location = str(request.url_for("get_inbox_message", content_id=content_id))
    return envelope({"location": location, "id": content_id})


@inbox.get("/appinbox/messages/{content_id}", name="get_inbox_message")
async def get_inbox_message(content_id: str, request: Request, _: Writer) -> dict[str, Any]:
    return await _one(request, "inbox", content_id)


@inbox.get("/appinbox/messages")
async def list_inbox_messages(
    request: Request,
    _: Writer,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after: Annotated[str | None, Query(max_length=64)] = None,
    tag: Annotated[
        str | None, Query(max_length=100, description="only messages with this tag")
    ] = None,
) -> dict[str, Any]:
    return await _page(request, "inbox", limit, after, tag)


@inbox.delete("/appinbox/messages/{content_id}")
async def delete_inbox_message(content_id: str, request: Request, _: Writer) -> dict[str, Any]:
    return await _delete(request, "inbox", content_id)


@media_router.post(
    "/media",
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def upload_media(request: Request, _: Writer) -> dict[str, Any]:
    """Upload a JPEG or PNG (the raw bytes as the body, at most 5 MiB); the answer's
    ``url`` goes into a message's ``image`` or ``logo``."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > media.MAX_BYTES:
        raise ApiError(413, f"the image is larger than {media.MAX_BYTES // (1024 * 1024)} MiB")
    data = await media.read_limited(request.stream())
    media_id, image = await media.store(request.app.state.pool, data)
    url = f"{request.app.state.settings.public_url.rstrip('/')}/media/{media_id}"
    return envelope(
        {"id": media_id, "url": url, "contentType": image.content_type, "sizeBytes": len(data),
         "width": image.width, "height": image.height}
    )  # fmt: skip


@media_router.get("/media/{media_id}", name="get_media", response_class=Response)
async def download_media(media_id: str, request: Request) -> Response:
    """Public, so that apps and web pages can load the image; ids are unguessable."""
    row = await media.load(request.app.state.pool, media_id)
    if row is None:
        raise ApiError(404, f"no media with id {media_id!r}")
    return Response(
        row["data"], media_type=row["content_type"],
        headers={"Cache-Control": "public, max-age=31536000, immutable",
                 "X-Content-Type-Options": "nosniff"},
    )  # fmt: skip


router = APIRouter()
router.include_router(inapp)
router.include_router(inbox)
router.include_router(media_router)
