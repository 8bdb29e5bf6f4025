"""/apps (the apps that receive messages) and /tag-caps."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from services.publisher.apps import repository, use_cases
from services.publisher.apps.models import CreateApp, PutCategories, PutTagCap, UpdateApp
from services.publisher.auth import Principal, require
from services.publisher.errors import ApiError, envelope

router = APIRouter(tags=["apps"])


AppAdmin = Annotated[Principal, Depends(require("apps"))]


@router.post("/apps", status_code=201)
async def create_app(body: CreateApp, request: Request, _: AppAdmin) -> dict[str, Any]:
    """Create an app; the answer is the only time ``appSecret`` is shown."""
    return envelope(await use_cases.create_app(request.app.state.pool, body))


@router.get("/apps/{app_key}")
async def get_app(app_key: str, request: Request, _: AppAdmin) -> dict[str, Any]:
    row = await repository.get_app(request.app.state.pool, app_key)
    if row is None:
        raise ApiError(404, f"no app with key {app_key!r}")
    return envelope(use_cases.app_view(row, include_secret=False))


@router.patch("/apps/{app_key}")
async def update_app(
    app_key: str, body: UpdateApp, request: Request, _: AppAdmin
) -> dict[str, Any]:
    """Change an app's ``deepLinkSchemes`` (the list given replaces the app's)."""
    return envelope(await use_cases.update_app(request.app.state.pool, app_key, body))


@router.put("/apps/{app_key}/categories")
async def put_categories(
    app_key: str, body: PutCategories, request: Request, _: AppAdmin
) -> dict[str, Any]:
    """Declare the subscription categories devices of this app show and change
    (``GET/PUT /v1/preferences``); the list given replaces the app's."""
    categories = await use_cases.put_categories(request.app.state.pool, app_key, body)
    return envelope({"appKey": app_key, "categories": categories})


@router.get("/apps/{app_key}/categories")
async def get_categories(app_key: str, request: Request, _: AppAdmin) -> dict[str, Any]:
    row = await repository.get_app(request.app.state.pool, app_key)
    if row is None:
        raise ApiError(404, f"no app with key {app_key!r}")
    return envelope({"appKey": app_key, "categories": list(row["subscription_categories"])})


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
