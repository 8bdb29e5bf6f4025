"""/contacts: the people who read messages, one at a time or imported in bulk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from services.publisher.auth import Principal, require
from services.publisher.contacts import batch_import, repository, use_cases
from services.publisher.contacts.models import UpsertContact
from services.publisher.errors import ApiError, envelope

router = APIRouter(tags=["contacts"])


ContactWriter = Annotated[Principal, Depends(require("contacts"))]


ContactIdPath = Annotated[str, Path(min_length=1, max_length=200)]


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
    imported = await batch_import.import_contacts(request.app.state.pool, stream)
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
    view, created = await use_cases.upsert_contact(request.app.state.pool, contact_id, body)
    response.status_code = 201 if created else 200
    return envelope(view)


@router.get("/contacts/{contact_id}")
async def get_contact(
    contact_id: ContactIdPath, request: Request, _: ContactWriter
) -> dict[str, Any]:
    row = await repository.get_contact(request.app.state.pool, contact_id)
    if row is None:
        raise ApiError(404, f"no contact with id {contact_id!r}")
    return envelope(use_cases.contact_view(row))
