"""/api-tokens (list, revoke; scope ``admin``) and an app's keys: secret rotation and its
per-device rate limit (scope ``apps``). docs/api.md, "Key hygiene"."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from services.publisher.auth import Principal, require
from services.publisher.errors import ApiError, envelope
from services.publisher.keys import repository
from services.publisher.keys.models import PutDeviceRateLimit, RotateSecret

router = APIRouter(tags=["keys"])

Admin = Annotated[Principal, Depends(require("admin"))]
AppAdmin = Annotated[Principal, Depends(require("apps"))]
TokenId = Annotated[str, Path(min_length=1, max_length=64)]
AppKey = Annotated[str, Path(min_length=1, max_length=200)]


def _instant(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def token_view(row: Any) -> dict[str, Any]:
    """A token as listed: never its secret (which is not stored) nor its hash."""
    return {
        "id": row["id"],
        "name": row["name"],
        "scopes": list(row["scopes"]),
        "createdAt": _instant(row["created_at"]),
        "lastUsedAt": _instant(row["last_used_at"]),
        "revokedAt": _instant(row["revoked_at"]),
        "requestsPerMinute": row["requests_per_minute"],
    }


@router.get("/api-tokens")
async def list_tokens(request: Request, _: Admin) -> dict[str, Any]:
    """Every API token, revoked ones included, oldest first; no secrets."""
    rows = await repository.list_tokens(request.app.state.pool)
    return envelope([token_view(row) for row in rows])


@router.delete("/api-tokens/{token_id}")
async def revoke_token(token_id: TokenId, request: Request, _: Admin) -> dict[str, Any]:
    """Revoke a token: every publisher refuses it from the next request on. Revoking a
    revoked token changes nothing."""
    row = await repository.revoke_token(request.app.state.pool, token_id)
    if row is None:
        raise ApiError(404, f"no API token with id {token_id!r}")
    return envelope(token_view(row))


@router.post("/apps/{app_key}/secret/rotate")
async def rotate_secret(
    app_key: AppKey, request: Request, _: AppAdmin, body: RotateSecret | None = None
) -> dict[str, Any]:
    """A new secret for the app (shown this once); the previous one keeps verifying device
    tokens and stream tickets for ``overlapSeconds`` or until retired."""
    overlap = (body or RotateSecret()).overlapSeconds
    row = await repository.rotate_secret(request.app.state.pool, app_key, overlap)
    if row is None:
        raise ApiError(404, f"no app with key {app_key!r}")
    return envelope(
        {
            "appKey": row["app_key"],
            "appSecret": row["secret"],
            "previousSecretExpiresAt": _instant(row["previous_secret_expires_at"]),
        }
    )


@router.delete("/apps/{app_key}/secret/previous")
async def retire_secret(app_key: AppKey, request: Request, _: AppAdmin) -> dict[str, Any]:
    """Stop the previous secret verifying now, before its deadline (sync sees it within
    10 seconds). ``retired`` says whether one was still verifying."""
    row = await repository.retire_secret(request.app.state.pool, app_key)
    if row is None:
        raise ApiError(404, f"no app with key {app_key!r}")
    return envelope({"appKey": app_key, "retired": row["was_verifying"]})


@router.put("/apps/{app_key}/rate-limit")
async def put_device_rate_limit(
    app_key: AppKey, body: PutDeviceRateLimit, request: Request, _: AppAdmin
) -> dict[str, Any]:
    """The app's own limit of device API requests a minute per device (null: sync's
    setting); sync applies it within 10 seconds."""
    limit = body.deviceRequestsPerMinute
    if await repository.set_device_limit(request.app.state.pool, app_key, limit) is None:
        raise ApiError(404, f"no app with key {app_key!r}")
    return envelope({"appKey": app_key, "deviceRequestsPerMinute": limit})
