"""/apps and /contacts: the apps that receive messages and the people who read them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from services.publisher import handlers, repository
from services.publisher.auth import Principal, require
from services.publisher.contacts import batch_import as contacts_import
from services.publisher.errors import ApiError, envelope
from services.publisher.models import CreateApp, PutTagCap, UpdateApp, UpsertContact

router = APIRouter(tags=["apps and contacts"])
AppAdmin = Annotated[Principal, Depends(require("apps"))]
ContactWriter = Annotated[Principal, Depends(require("contacts"))]
ContactIdPath = Annotated[str, Path(min_length=1, max_length=200)]


@router.post("/apps", status_code=201)
async def create_app(body: CreateApp, request: Request, _: AppAdmin) -> dict[str, Any]:
    """Create an app; the answer is the only time ``appSecret`` is shown."""
    return envelope(await handlers.create_app(request.app.state.pool, body))


@router.get("/apps/{app_key}")
async def get_app(app_key: str, request: Request, _: AppAdmin) -> dict[str, Any]:
    row = await repository.get_app(request.app.state.pool, app_key)
    if row is None:
        raise ApiError(404, f"no app with key {app_key!r}")
    return envelope(handlers.app_view(row, include_secret=False))


@router.patch("/apps/{app_key}")
async def update_app(
    app_key: str, body: UpdateApp, request: Request, _: AppAdmin
) -> dict[str, Any]:
    """Change an app's ``deepLinkSchemes`` (the list given replaces the app's)."""
    return envelope(await handlers.update_app(request.app.state.pool, app_key, body))


@router.post(
    "/contacts/batch",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-ndjson": {
                    "schema": {
                        "type": "string",
                        "description": 'one contact per line: {"contactId": 13507, '
                        '"attributes": {...}, "subscriptions": {"offers": true}}; '
                        "each line at most 256 KiB, at most 1,000,000 lines",
                    }
                }
            },
        }
    },
)
async def import_contacts(request: Request, _: ContactWriter) -> dict[str, Any]:
    """Batch upsert: newline-delimited JSON, streamed (100k+ lines in one call). All or
    nothing: a bad line is reported by number and nothing is imported."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip()
    if media_type not in ("application/x-ndjson", "application/jsonl"):
        raise ApiError(415, "send contacts as application/x-ndjson, one JSON object per line")
    max_lines = request.app.state.settings.max_import_lines
    stream = _at_most(request.stream(), max_lines)
    imported = await contacts_import.import_contacts(request.app.state.pool, stream)
    return envelope({"imported": imported})


async def _at_most(stream: AsyncIterator[bytes], max_lines: int) -> AsyncIterator[bytes]:
    """The body, refused (and nothing imported) once it passes ``max_lines`` lines."""
    lines = 0
    async for chunk in stream:
        lines += chunk.count(b"\n")
        if lines > max_lines:
            raise ApiError(413, f"an import holds at most {max_lines} lines; split it")
        yield chunk


@router.put("/contacts/{contact_id}")
async def put_contact(
    contact_id: ContactIdPath,
    body: UpsertContact,
    request: Request,
    response: Response,
    _: ContactWriter,
) -> dict[str, Any]:
    """Create the contact or merge the given attribute and subscription keys into it."""
    view, created = await handlers.upsert_contact(request.app.state.pool, contact_id, body)
    response.status_code = 201 if created else 200
    return envelope(view)


@router.get("/contacts/{contact_id}")
async def get_contact(
    contact_id: ContactIdPath, request: Request, _: ContactWriter
) -> dict[str, Any]:
    row = await repository.get_contact(request.app.state.pool, contact_id)
    if row is None:
        raise ApiError(404, f"no contact with id {contact_id!r}")
    return envelope(handlers.contact_view(row))


TagPath = Annotated[str, Path(min_length=1, max_length=100)]


def _tag_cap_view(tag: str, max_count: int, period_seconds: int) -> dict[str, Any]:
    return {"tag": tag, "maxCount": max_count, "periodSeconds": period_seconds}


@router.put("/tag-caps/{tag}")
async def put_tag_cap(
    tag: TagPath, body: PutTagCap, request: Request, _: AppAdmin
) -> dict[str, Any]:
    """Create or change a tag cap; the delivery worker applies it within seconds."""
    await repository.put_tag_cap(request.app.state.pool, tag, body.maxCount, body.periodSeconds)
    return envelope(_tag_cap_view(tag, body.maxCount, body.periodSeconds))


@router.get("/tag-caps")
async def list_tag_caps(request: Request, _: AppAdmin) -> dict[str, Any]:
    rows = await repository.list_tag_caps(request.app.state.pool)
    return envelope([_tag_cap_view(r["tag"], r["max_count"], r["period_seconds"]) for r in rows])


@router.delete("/tag-caps/{tag}")
async def delete_tag_cap(tag: TagPath, request: Request, _: AppAdmin) -> dict[str, Any]:
    if not await repository.delete_tag_cap(request.app.state.pool, tag):
        raise ApiError(404, f"no tag cap for {tag!r}")
    return envelope({"tag": tag, "deleted": True})
