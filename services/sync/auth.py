"""Device authentication: ``X-App-Key`` plus an HS256 user token signed with that app's
secret by the customer's own backend (``sub`` = contact id, ``exp`` required).

Apps are cached in-process for a minute so the hot path makes no PostgreSQL query, and a
verified token is remembered until its ``exp`` so a device's phone homes verify its
signature once, not every time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import jwt
from cachetools import LRUCache, TTLCache
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
    all while PostgreSQL is slow).

    Also the device tokens verified with those apps' secrets, by (app key, secret, token),
    each until its ``exp`` and never beyond, in an LRU bounded by the characters held
    (``max_token_chars``). The secret is part of the key, so a token signed with a secret
    the app no longer has is verified again, and refused. Only tokens that verified are
    kept: a made-up token costs one signature check each time, as before, and cannot push
    valid ones out."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        ttl_seconds: float = 60.0,
        max_apps: int = 10_000,
        timer: Callable[[], float] = time.monotonic,
        max_token_chars: int = 64 * 2**20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pool = pool
        self._apps: TTLCache[str, App | None] = TTLCache(max_apps, ttl_seconds, timer)
        # (contact id, exp as PyJWT reads it, characters held): a plain tuple of str and
        # int, which the garbage collector stops tracking, so a full cache adds little to
        # each full collection (named tuples stay tracked: +30 ms a collection at 190,000)
        self._tokens: LRUCache[tuple[str, str, str], tuple[str, int, int]] = LRUCache(
            max_token_chars, getsizeof=lambda entry: entry[2]
        )
        self._clock = clock

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

    def contact_of(self, app: App, token: str) -> str:
        """The contact id (``sub``) of a token signed with ``app``'s secret, or Unauthorized."""
        key = (app.app_key, app.secret, token)
        known = self._tokens.get(key)
        if known is not None:
            contact_id, exp, _ = known
            if self._clock() < exp:
                return contact_id
            raise Unauthorized("user token expired")  # kept: it stays expired
        contact_id, exp = _verify_token(app.secret, token)
        size = len(app.app_key) + len(app.secret) + len(token) + len(contact_id) + 100
        if size <= self._tokens.maxsize:
            self._tokens[key] = (contact_id, exp, size)
        return contact_id


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
    return Device(app, apps.contact_of(app, token.strip()))


def _verify_token(secret: str, token: str) -> tuple[str, int]:
    """(contact id, exp) of a token PyJWT verifies with ``secret``, or Unauthorized."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["sub", "exp"]}
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
    return contact_id, int(claims["exp"])


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
