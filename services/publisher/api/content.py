"""/channels/push/inappcontent: publish, read, list and delete in-app content."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from services.publisher import handlers, repository
from services.publisher.auth import Principal, require
from services.publisher.errors import ApiError, envelope
from services.publisher.models import CreateInAppContent

router = APIRouter(prefix="/channels/push/inappcontent", tags=["in-app content"])
Writer = Annotated[Principal, Depends(require("content"))]


@router.post("", status_code=201)
async def publish(body: CreateInAppContent, request: Request, _: Writer) -> dict[str, Any]:
    content_id = await handlers.publish_inapp_content(request.app.state.pool, body)
    location = str(request.url_for("get_inapp_content", content_id=content_id))
    return envelope({"location": location, "id": content_id})


@router.get("/{content_id}", name="get_inapp_content")
async def get_one(content_id: str, request: Request, _: Writer) -> dict[str, Any]:
    row = await repository.get_content(request.app.state.pool, content_id)
    if row is None or row["kind"] != "inapp":
        raise ApiError(404, f"no in-app content with id {content_id!r}")
    return envelope(handlers.content_view(row))


@router.get("")
async def list_all(
    request: Request,
    _: Writer,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after: Annotated[str | None, Query(max_length=64)] = None,
    tag: Annotated[str | None, Query(max_length=100)] = None,
) -> dict[str, Any]:
    rows = await repository.list_contents(
        request.app.state.pool, "inapp", after=after, limit=limit + 1, tag=tag
    )
    next_url = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_url = str(request.url.include_query_params(after=rows[-1]["id"]))
    return envelope([handlers.content_view(r) for r in rows], next_page_url=next_url)


@router.delete("/{content_id}")
async def delete(content_id: str, request: Request, _: Writer) -> dict[str, Any]:
    if not await repository.delete_content(request.app.state.pool, "inapp", content_id):
        raise ApiError(404, f"no in-app content with id {content_id!r}")
    return envelope({"id": content_id, "deleted": True})
