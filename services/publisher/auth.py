"""API tokens: random, stored as SHA-256 hashes, with scopes.

A token reads ``ph_<id>_<secret>``. Only the hash of the whole token is stored, so a
database leak reveals no usable token. Scope ``admin`` grants every other scope.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from fastapi import Request

from services.publisher.errors import ApiError

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


async def create_token(pool: asyncpg.Pool, name: str, scopes: list[str]) -> str:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"unknown scope(s) {unknown}; choose from {', '.join(SCOPES)}")
    token_id, token = new_token()
    await pool.execute(
        "INSERT INTO api_tokens (id, name, token_hash, scopes) VALUES ($1, $2, $3, $4)",
        token_id,
        name,
        hash_token(token),
        sorted(set(scopes)),
    )
    return token


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
        row = await pool.fetchrow(
            "SELECT id, name, scopes FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
            hash_token(token.strip()),
        )
        if row is None:
            raise ApiError(
                401, "invalid or revoked API token", headers={"WWW-Authenticate": "Bearer"}
            )
        principal = Principal(row["id"], row["name"], frozenset(row["scopes"]))
        if scope not in principal.scopes and "admin" not in principal.scopes:
            raise ApiError(403, f"this token lacks the '{scope}' scope")
        return principal

    return dependency
