"""/apps and /contacts: the apps that receive messages and the people who read them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from services.publisher import handlers, repository
from services.publisher.auth import Principal, require
from services.publisher.errors import ApiError, envelope
from services.publisher.models import CreateApp, UpsertContact

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
