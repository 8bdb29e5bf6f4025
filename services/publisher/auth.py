"""API tokens: random, stored as SHA-256 hashes, with scopes.

A token reads ``ph_<id>_<secret>``. Only the hash of the whole token is stored, so a
database leak reveals no usable token. Scope ``admin`` grants every other scope.

Every request reads its token's row (by the primary-key-sized unique index on the hash):
no cache, so a revoked token is refused by every publisher process from the next request
on. ``last_used_at`` is written at most once a minute per token and process. Each token's
requests are rate limited per minute (its own ``requests_per_minute``, else the setting
``token_requests_per_minute``), counted in Redis (shared/rate_limits.py): 429 with
``Retry-After`` beyond it.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from fastapi import Request

from services.publisher.errors import ApiError
from shared.rate_limits import RateLimiter

SCOPES = ("admin", "content", "sends", "contacts", "apps", "stats")


@dataclass(frozen=True)
class Principal:
    token_id: str
    name: str
    scopes: frozenset[str]


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_token() -> tuple[str, str]:
    token_id = secrets.token_hex(4)
    return token_id, f"ph_{token_id}_{secrets.token_urlsafe(32)}"


async def create_token(
    pool: asyncpg.Pool, name: str, scopes: list[str], requests_per_minute: int | None = None
) -> str:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"unknown scope(s) {unknown}; choose from {', '.join(SCOPES)}")
    if requests_per_minute is not None and requests_per_minute < 1:
        raise ValueError("requests per minute must be at least 1")
    token_id, token = new_token()
    await pool.execute(
        """INSERT INTO api_tokens (id, name, token_hash, scopes, requests_per_minute)
           VALUES ($1, $2, $3, $4, $5)""",
        token_id,
        name,
        hash_token(token),
        sorted(set(scopes)),
        requests_per_minute,
    )
    return token


_TOKEN = """SELECT id, name, scopes, requests_per_minute FROM api_tokens
             WHERE token_hash = $1 AND revoked_at IS NULL"""
LAST_USED_EVERY_SECONDS = 60.0
_last_used: dict[str, float] = {}  # token id: when this process last wrote last_used_at


async def _note_use(pool: asyncpg.Pool, token_id: str) -> None:
    now = time.monotonic()
    if now - _last_used.get(token_id, -math.inf) < LAST_USED_EVERY_SECONDS:
        return
    _last_used[token_id] = now
    await pool.execute("UPDATE api_tokens SET last_used_at = now() WHERE id = $1", token_id)


async def _limit(request: Request, token_id: str, own: int | None) -> None:
    limiter: RateLimiter | None = getattr(request.app.state, "limiter", None)
    if limiter is None:  # an app built without its lifespan (tests)
        return
    per_minute = own or request.app.state.settings.token_requests_per_minute
    seconds = await limiter.retry_after("token", token_id, per_minute)
    if seconds is not None:
        raise ApiError(
            429,
            f"too many requests with this API token: at most {per_minute} a minute; "
            f"retry after {seconds}s",
            headers={"Retry-After": str(seconds)},
        )


def require(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: the caller's token must be valid and carry ``scope``."""

    async def dependency(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(
                401,
                "missing API token: send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        pool: asyncpg.Pool = request.app.state.pool
        row = await pool.fetchrow(_TOKEN, hash_token(token.strip()))
        if row is None:
            raise ApiError(
                401, "invalid or revoked API token", headers={"WWW-Authenticate": "Bearer"}
            )
        principal = Principal(row["id"], row["name"], frozenset(row["scopes"]))
        await _limit(request, principal.token_id, row["requests_per_minute"])
        await _note_use(pool, principal.token_id)
        if scope not in principal.scopes and "admin" not in principal.scopes:
            raise ApiError(403, f"this token lacks the '{scope}' scope")
        return principal

    return dependency
