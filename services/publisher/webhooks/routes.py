"""/apps/{app_key}/webhooks: outbound webhook endpoints, their dead letters, a test ping
(scope ``apps``). docs/api.md, "Webhooks"; docs/webhooks.md."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request

from services.publisher.auth import Principal, require
from services.publisher.errors import ApiError, envelope
from services.publisher.webhooks import repository
from services.publisher.webhooks.dispatcher import Dispatcher, ping_body
from services.publisher.webhooks.models import CreateWebhook, Ping, Replay, UpdateWebhook
from services.publisher.webhooks.signing import url_problem
from shared.http_limits import BIGINT_MAX

router = APIRouter(tags=["webhooks"])

AppAdmin = Annotated[Principal, Depends(require("apps"))]
AppKey = Annotated[str, Path(min_length=1, max_length=200)]
EndpointId = Annotated[int, Path(ge=1, le=BIGINT_MAX)]
BASE = "/apps/{app_key}/webhooks"


def _instant(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def view(row: Any) -> dict[str, Any]:
    out = {
        "id": row["id"], "url": row["url"], "events": list(row["event_types"]),
        "enabled": row["enabled"], "maxAttempts": row["max_attempts"],
        "createdAt": _instant(row["created_at"]), "updatedAt": _instant(row["updated_at"]),
    }  # fmt: skip
    if "dead_letters" in row:
        out["deadLetters"] = row["dead_letters"]
    return out


def _check_url(request: Request, url: str) -> None:
    allow = request.app.state.settings.webhook_allow_private_urls
    if problem := url_problem(url, allow_private=allow):
        raise ApiError(400, fields={"url": f"url {problem}"})


@router.post(BASE, status_code=201)
async def create_webhook(
    app_key: AppKey, body: CreateWebhook, request: Request, _: AppAdmin
) -> dict[str, Any]:
    """Register an endpoint; its signing ``secret`` is shown this once."""
    _check_url(request, body.url)
    row = await repository.create(
        request.app.state.pool, app_key, body.url, list(body.events), body.maxAttempts
    )
    if row is None:
        raise ApiError(404, f"no app with key {app_key!r}")
    return envelope({**view(row), "secret": row["secret"]})


@router.get(BASE)
async def list_webhooks(app_key: AppKey, request: Request, _: AppAdmin) -> dict[str, Any]:
    """The app's endpoints, oldest first, each with its count of dead letters; no secrets."""
    rows = await repository.list_for_app(request.app.state.pool, app_key)
    return envelope([view(row) for row in rows])


@router.patch(BASE + "/{endpoint_id}")
async def update_webhook(
    app_key: AppKey, endpoint_id: EndpointId, body: UpdateWebhook, request: Request, _: AppAdmin
) -> dict[str, Any]:
    """Change the URL, the event types, ``enabled`` or ``maxAttempts`` (null: the setting)."""
    changes = body.model_dump(exclude_unset=True)
    for name in ("url", "events", "enabled"):
        if name in changes and changes[name] is None:
            raise ApiError(400, fields={name: f"{name} must not be null"})
    if body.url is not None:
        _check_url(request, body.url)
    row = await repository.update(request.app.state.pool, app_key, endpoint_id, changes)
    return envelope(view(_found(row, app_key, endpoint_id)))


@router.delete(BASE + "/{endpoint_id}")
async def delete_webhook(
    app_key: AppKey, endpoint_id: EndpointId, request: Request, _: AppAdmin
) -> dict[str, Any]:
    """Remove the endpoint with its pending events and dead letters."""
    if not await repository.delete(request.app.state.pool, app_key, endpoint_id):
        _found(None, app_key, endpoint_id)
    return envelope({"id": endpoint_id, "deleted": True})


@router.get(BASE + "/{endpoint_id}/dead-letters")
async def list_dead_letters(
    app_key: AppKey,
    endpoint_id: EndpointId,
    request: Request,
    _: AppAdmin,
    after: Annotated[int, Query(ge=0, le=BIGINT_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Events given up on, oldest first; page with ``after`` (the last id seen)."""
    pool = request.app.state.pool
    _found(await repository.get(pool, app_key, endpoint_id), app_key, endpoint_id)
    rows = await repository.dead_letters(pool, endpoint_id, after, limit)
    return envelope([dead_letter_view(r) for r in rows])


def dead_letter_view(r: Any) -> dict[str, Any]:
    return {
        "id": r["id"], "eventId": r["event_id"], "event": orjson.loads(r["event"]),
        "attempts": r["attempts"], "lastError": r["last_error"],
        "deadLetteredAt": _instant(r["updated_at"]),
    }  # fmt: skip


@router.post(BASE + "/{endpoint_id}/dead-letters/replay")
async def replay_dead_letters(
    app_key: AppKey,
    endpoint_id: EndpointId,
    request: Request,
    _: AppAdmin,
    body: Replay | None = None,
) -> dict[str, Any]:
    """Send dead letters again (all, or those of ``ids``), with fresh attempts."""
    pool = request.app.state.pool
    _found(await repository.get(pool, app_key, endpoint_id), app_key, endpoint_id)
    ids = (body or Replay()).ids
    return envelope({"replayed": await repository.replay(pool, endpoint_id, ids)})


@router.post(BASE + "/{endpoint_id}/ping")
async def ping_webhook(
    app_key: AppKey,
    endpoint_id: EndpointId,
    request: Request,
    _: AppAdmin,
    body: Ping | None = None,
) -> dict[str, Any]:
    """POST one signed ``ping`` event to the endpoint now and say how it went."""
    row = _found(await repository.get(request.app.state.pool, app_key, endpoint_id), app_key,
                 endpoint_id)  # fmt: skip
    dispatcher: Dispatcher = request.app.state.webhooks
    event = orjson.dumps(ping_body(app_key)).decode()
    error = await dispatcher.post(row["url"], row["secret"], [event])
    return envelope({"delivered": error is None, "error": error})


def _found(row: Any, app_key: str, endpoint_id: int) -> Any:
    if row is None:
        raise ApiError(404, f"no webhook {endpoint_id} in app {app_key!r}")
    return row
