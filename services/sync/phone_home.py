"""The phone home: what is waiting for this device, or a cheap "nothing new"."""

from __future__ import annotations

import time
from typing import Any, Literal

import asyncpg
import orjson
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from services.sync import metrics, repository
from services.sync.auth import Device
from shared.redis_keys import inbox_version

Platform = Literal["gcm", "apns", "web"]


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform: Platform
    cursor: str | None = Field(default=None, max_length=64)


async def current_version(redis: Redis, contact_id: str) -> str:
    """The contact's inbox version. A missing key (new contact, or Redis lost its data) is
    set to the current time in milliseconds, so a version never repeats one a device saw
    before the loss."""
    key = inbox_version(contact_id)
    value = await redis.get(key)
    if value is None:
        await redis.set(key, int(time.time() * 1000), nx=True)
        value = await redis.get(key)
    return value.decode() if isinstance(value, bytes) else str(value)


def message_view(row: asyncpg.Record) -> dict[str, Any]:
    template = row["template"]
    return {
        "id": str(row["id"]),
        "inAppContentId": row["content_id"],
        "template": template.get("template"),
        "rules": template.get("rules", []),
        "content": template.get("content", {}),
        "maxViews": row["max_views"],
        "viewsLeft": row["max_views"] - row["views"],
        "expiresAt": row["expires_at"].isoformat() if row["expires_at"] else None,
    }


async def sync(
    pool: asyncpg.Pool, redis: Redis, device: Device, request: SyncRequest
) -> dict[str, Any]:
    version = await current_version(redis, device.contact_id)
    cursor = f"{request.platform}.{version}"
    answer: dict[str, Any] = {
        "cursor": cursor,
        "nextSyncAfterSeconds": device.app.next_sync_after_seconds,
    }
    if request.cursor == cursor:
        metrics.PHONE_HOMES.labels("nothing_new", request.platform).inc()
        return {"changed": False, **answer}
    metrics.PHONE_HOMES.labels("changed", request.platform).inc()
    unread, rows = await repository.phone_home(
        pool, device.contact_id, device.app.app_key, request.platform
    )
    messages = [message_view(r) for r in rows]
    return {"changed": True, "messages": messages, "inboxUnreadCount": unread, **answer}


async def sync_body(
    pool: asyncpg.Pool, redis: Redis, device: Device, platform: Platform, cursor: str | None
) -> bytes:
    """The phone home's answer as the JSON body the server sends (what any server path
    hands out unchanged)."""
    answer = await sync(pool, redis, device, SyncRequest(platform=platform, cursor=cursor))
    return orjson.dumps(answer)
