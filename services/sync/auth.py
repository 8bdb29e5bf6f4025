"""Device authentication: ``X-App-Key`` plus an HS256 user token signed with that app's
secret by the customer's own backend (``sub`` = contact id, ``exp`` required).

Apps are cached in-process for a minute so the hot path makes no PostgreSQL query.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import jwt
from cachetools import TTLCache
from fastapi import HTTPException, Request

from shared.http_limits import storable_text


@dataclass(frozen=True)
class App:
    app_key: str
    secret: str
    next_sync_after_seconds: int


@dataclass(frozen=True)
class Device:
    app: App
    contact_id: str


class AppCache:
    """Apps by key for ``ttl_seconds`` (a changed secret reaches sync within that time), in
    a bounded ``cachetools.TTLCache``: an unknown key is cached too, and the least recently
    used keys go first when it is full, so keys made up by callers cannot grow it. Devices
    of one app missing it at once each read its row (no per-key lock that would hold them
    all while PostgreSQL is slow)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        ttl_seconds: float = 60.0,
        max_apps: int = 10_000,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self._apps: TTLCache[str, App | None] = TTLCache(max_apps, ttl_seconds, timer)

    async def get(self, app_key: str) -> App | None:
        try:
            return self._apps[app_key]
        except KeyError:  # never read, expired or evicted
            pass
        row = await self.pool.fetchrow(
            "SELECT app_key, secret, next_sync_after_seconds FROM apps WHERE app_key = $1", app_key
        )
        app = App(row["app_key"], row["secret"], row["next_sync_after_seconds"]) if row else None
        self._apps[app_key] = app
        return app


class Unauthorized(Exception):
    pass


async def verify(apps: AppCache, app_key: str | None, authorization: str | None) -> Device:
    """The device's app and contact, or Unauthorized saying why."""
    if not app_key:
        raise Unauthorized("missing X-App-Key header")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing user token: send 'Authorization: Bearer <token>'")
    app = await apps.get(app_key)
    if app is None:
        raise Unauthorized("unknown app key")
    try:
        claims = jwt.decode(
            token.strip(), app.secret, algorithms=["HS256"], options={"require": ["sub", "exp"]}
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("user token expired") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"invalid user token: {exc}") from exc
    sub = claims["sub"]
    if isinstance(sub, bool) or not isinstance(sub, str | int):
        raise Unauthorized("user token's sub must be a string (the contact id)")
    contact_id = str(sub)
    if not 0 < len(contact_id) <= 200 or not storable_text(contact_id):
        raise Unauthorized("user token's sub must be 1..200 characters of text without NUL")
    return Device(app, contact_id)


async def authenticate(request: Request) -> Device:
    """A FastAPI dependency: the device's app and contact, or 401."""
    try:
        return await verify(
            request.app.state.apps,
            request.headers.get("x-app-key"),
            request.headers.get("authorization"),
        )
    except Unauthorized as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc
