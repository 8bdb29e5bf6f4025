"""Device authentication: ``X-App-Key`` plus an HS256 user token signed with that app's
secret by the customer's own backend (``sub`` = contact id, ``exp`` required).

Apps are cached in-process for ``APP_CACHE_SECONDS`` so the hot path makes no PostgreSQL
query, and a verified token is remembered until its ``exp`` so a device's phone homes
verify its signature once, not every time.

Secret rotation (docs/api.md, "App secret rotation"): an app may hold a previous secret
until a deadline. Tokens signed with it verify until the deadline (checked on every
request, exactly) or until the app is retired (seen within ``APP_CACHE_SECONDS``). A token
whose signature fails with the cached secrets makes its app be read again, at most once
per ``RELOAD_SECONDS`` per app and process, so a newly rotated secret verifies within a
second anywhere.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import jwt
from cachetools import LRUCache, TTLCache
from fastapi import HTTPException, Request

from shared.device_limits import DeviceLimits
from shared.http_limits import storable_text

APP_CACHE_SECONDS = 10.0
RELOAD_SECONDS = 1.0
_APP = """SELECT app_key, secret, next_sync_after_seconds, previous_secret,
                 extract(epoch FROM previous_secret_expires_at)::float8 AS previous_until,
                 device_requests_per_minute
            FROM apps WHERE app_key = $1"""


@dataclass(frozen=True)
class App:
    app_key: str
    secret: str
    next_sync_after_seconds: int
    previous_secret: str | None = None
    previous_until: float = 0.0  # epoch seconds: the previous secret verifies before it
    device_requests_per_minute: int | None = None  # None: sync's setting
    loaded_at: float = field(default=0.0, compare=False)  # AppCache's timer

    def secrets(self, now: float) -> tuple[tuple[str, float], ...]:
        """(secret, verifies until) of each secret that verifies at ``now``."""
        if self.previous_secret is None or now >= self.previous_until:
            return ((self.secret, math.inf),)
        return (self.secret, math.inf), (self.previous_secret, self.previous_until)


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
    each until its ``exp`` (and a previous secret's deadline) and never beyond, in an LRU
    bounded by the characters held (``max_token_chars``). The secret is part of the key, so
    a token signed with a secret the app no longer has is verified again, and refused.
    Only tokens that verified are kept: a made-up token costs one signature check each
    time, as before, and cannot push valid ones out."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        ttl_seconds: float = APP_CACHE_SECONDS,
        max_apps: int = 10_000,
        timer: Callable[[], float] = time.monotonic,
        max_token_chars: int = 64 * 2**20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pool = pool
        self._apps: TTLCache[str, App | None] = TTLCache(max_apps, ttl_seconds, timer)
        # (contact id, exp as PyJWT reads it, characters held, verifies until): a plain
        # tuple of str and numbers, which the garbage collector stops tracking, so a full
        # cache adds little to each full collection (named tuples stay tracked: +30 ms a
        # collection at 190,000)
        self._tokens: LRUCache[tuple[str, str, str], tuple[str, int, int, float]] = LRUCache(
            max_token_chars, getsizeof=lambda entry: entry[2]
        )
        self._timer = timer
        self._clock = clock

    async def get(self, app_key: str) -> App | None:
        try:
            return self._apps[app_key]
        except KeyError:  # never read, expired or evicted
            pass
        return await self._load(app_key)

    async def _load(self, app_key: str) -> App | None:
        row = await self.pool.fetchrow(_APP, app_key)
        app = None
        if row:
            app = App(
                row["app_key"], row["secret"], row["next_sync_after_seconds"],
                row.get("previous_secret"), row.get("previous_until") or 0.0,
                row.get("device_requests_per_minute"), self._timer(),
            )  # fmt: skip
        self._apps[app_key] = app
        return app

    async def reloaded(self, app: App) -> App | None:
        """The app read again if its cached copy is older than RELOAD_SECONDS, else None."""
        if self._timer() - app.loaded_at < RELOAD_SECONDS:
            return None
        return await self._load(app.app_key)

    def contact_of(self, app: App, token: str) -> str:
        """The contact id (``sub``) of a token signed with one of ``app``'s secrets, or
        Unauthorized (BadSignature when none of them signed it)."""
        now = self._clock()
        secrets = app.secrets(now)
        for secret, _ in secrets:
            known = self._tokens.get((app.app_key, secret, token))
            if known is None:
                continue
            contact_id, exp, _, verifies_until = known
            if now >= exp:
                raise Unauthorized("user token expired")  # kept: it stays expired
            if now < verifies_until:
                return contact_id
        for secret, until in secrets:
            try:
                contact_id, exp = _verify_token(secret, token)
            except BadSignature:
                continue
            size = len(app.app_key) + len(secret) + len(token) + len(contact_id) + 100
            if size <= self._tokens.maxsize:
                self._tokens[(app.app_key, secret, token)] = (contact_id, exp, size, until)
            return contact_id
        raise BadSignature("invalid user token: Signature verification failed")


class Unauthorized(Exception):
    pass


class BadSignature(Unauthorized):
    """None of the app's secrets signed the token (it may have a newer one)."""


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
    token = token.strip()
    try:
        return Device(app, apps.contact_of(app, token))
    except BadSignature:
        fresh = await apps.reloaded(app)  # a secret rotated since the app was read?
        if fresh is None or fresh.secrets(0) == app.secrets(0):
            raise
        return Device(fresh, apps.contact_of(fresh, token))


def _verify_token(secret: str, token: str) -> tuple[str, int]:
    """(contact id, exp) of a token PyJWT verifies with ``secret``, or Unauthorized."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["sub", "exp"]}
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("user token expired") from exc
    except jwt.InvalidSignatureError as exc:
        raise BadSignature(f"invalid user token: {exc}") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"invalid user token: {exc}") from exc
    sub = claims["sub"]
    if isinstance(sub, bool) or not isinstance(sub, str | int):
        raise Unauthorized("user token's sub must be a string (the contact id)")
    contact_id = str(sub)
    if not 0 < len(contact_id) <= 200 or not storable_text(contact_id):
        raise Unauthorized("user token's sub must be 1..200 characters of text without NUL")
    return contact_id, int(claims["exp"])


async def retry_after(state: Any, device: Device) -> int | None:
    """None if the device may make this request (counted), else the seconds until it may:
    the app's own per-device limit, else sync's setting; none without a limiter (an app
    built without its lifespan, in tests)."""
    limits: DeviceLimits | None = getattr(state, "device_limits", None)
    if limits is None:
        return None
    per_minute = device_limit(state, device.app)
    return await limits.retry_after(device.app.app_key, device.contact_id, per_minute)


def device_limit(state: Any, app: App) -> int:
    """Requests a minute a device of ``app`` may make."""
    return app.device_requests_per_minute or int(state.device_requests_per_minute)


async def authenticate(request: Request) -> Device:
    """A FastAPI dependency: the device's app and contact, or 401; 429 when the device
    went over its rate limit."""
    try:
        device = await verify(
            request.app.state.apps,
            request.headers.get("x-app-key"),
            request.headers.get("authorization"),
        )
    except Unauthorized as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc
    seconds = await retry_after(request.app.state, device)
    if seconds is not None:
        raise HTTPException(
            429,
            f"too many requests from this device: at most "
            f"{device_limit(request.app.state, device.app)} a minute; retry after {seconds}s",
            headers={"Retry-After": str(seconds)},
        )
    return device
