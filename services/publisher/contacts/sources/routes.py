"""/contact-sources: static lists and attribute queries that name an audience."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from services.publisher.auth import Principal, require
from services.publisher.contacts.sources import repository, use_cases
from services.publisher.contacts.sources.models import CreateContactSource
from services.publisher.errors import ApiError, envelope

router = APIRouter(prefix="/contact-sources", tags=["contact sources"])
ContactWriter = Annotated[Principal, Depends(require("contacts"))]
SourceId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.post("", status_code=201)
async def create(body: CreateContactSource, request: Request, _: ContactWriter) -> dict[str, Any]:
    """A static list (``contactIds``) or an attribute ``query``; see docs/contact-sources.md."""
    pool = request.app.state.pool
    source_id = await use_cases.create_contact_source(pool, body)
    row = await use_cases.get_contact_source(pool, source_id)
    location = str(request.url_for("get_contact_source", source_id=source_id))
    return envelope({"location": location, **await use_cases.contact_source_view(pool, row)})


@router.get("/{source_id}", name="get_contact_source")
async def get_one(source_id: SourceId, request: Request, _: ContactWriter) -> dict[str, Any]:
    pool = request.app.state.pool
    row = await use_cases.get_contact_source(pool, source_id)
    return envelope(await use_cases.contact_source_view(pool, row))


@router.get("/{source_id}/members")
async def members(
    source_id: SourceId,
    request: Request,
    _: ContactWriter,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[str | None, Query(min_length=1, max_length=200, pattern=r"^[^\x00]*$")] = None,
) -> dict[str, Any]:
    """Member contact ids in ``contactId`` order; follow ``meta.nextPageUrl`` for more."""
    pool = request.app.state.pool
    row = await use_cases.get_contact_source(pool, source_id)
    ids = await repository.page_members(
        pool, use_cases.source_of(row), after=after, limit=limit + 1
    )
    next_url = None
    if len(ids) > limit:
        ids = ids[:limit]
        next_url = str(request.url.include_query_params(after=ids[-1]))
    return envelope([{"contactId": i} for i in ids], next_page_url=next_url)


@router.delete("/{source_id}")
async def delete(source_id: SourceId, request: Request, _: ContactWriter) -> dict[str, Any]:
    if not await repository.delete_source(request.app.state.pool, source_id):
        raise ApiError(404, f"no contact source with id {source_id}")
    return envelope({"id": source_id, "deleted": True})
