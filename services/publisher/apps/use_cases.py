"""App use cases: create an app (its key and secret), change what it declares, its view."""

from __future__ import annotations

import secrets
from typing import Any

import asyncpg

from services.publisher.apps import repository
from services.publisher.apps.models import CreateApp, PutCategories, UpdateApp
from services.publisher.errors import ApiError


async def create_app(pool: asyncpg.Pool, command: CreateApp) -> dict[str, Any]:
    row = {
        "app_key": secrets.token_urlsafe(12),
        "name": command.name,
        "secret": secrets.token_urlsafe(32),
        "frequency_limits": command.frequencyLimits.model_dump(exclude_none=True),
        "next_sync_after_seconds": command.nextSyncAfterSeconds,
        "deep_link_schemes": list(dict.fromkeys(s.lower() for s in command.deepLinkSchemes)),
    }
    await repository.insert_app(pool, row)
    return app_view(row, include_secret=True)


async def update_app(pool: asyncpg.Pool, app_key: str, command: UpdateApp) -> dict[str, Any]:
    """Change what an app declares. A scheme dropped here makes later sends of content that
    links to it to this app a 400; what was delivered stays as it is."""
    row = await repository.get_app(pool, app_key)
    if row is None:
        raise ApiError(404, f"no app with key {app_key!r}")
    if command.deepLinkSchemes is not None:
        schemes = list(dict.fromkeys(command.deepLinkSchemes))
        row = await repository.set_deep_link_schemes(pool, app_key, schemes)
    return app_view(row, include_secret=False)


async def put_categories(
    pool: asyncpg.Pool, app_key: str, command: PutCategories
) -> list[dict[str, str]]:
    """Declare the app's subscription categories. Contacts keep their choices for a
    category dropped here (delivery still honours an opt-out); devices stop showing it."""
    categories = [c.model_dump() for c in command.categories]
    if await repository.set_categories(pool, app_key, categories) is None:
        raise ApiError(404, f"no app with key {app_key!r}")
    return categories


def app_view(row: dict[str, Any] | asyncpg.Record, *, include_secret: bool) -> dict[str, Any]:
    view = {
        "appKey": row["app_key"],
        "name": row["name"],
        "frequencyLimits": row["frequency_limits"],
        "nextSyncAfterSeconds": row["next_sync_after_seconds"],
        "deepLinkSchemes": list(row["deep_link_schemes"]),
        "categories": list(row.get("subscription_categories") or []),
    }
    if include_secret:
        view["appSecret"] = row["secret"]
    return view
