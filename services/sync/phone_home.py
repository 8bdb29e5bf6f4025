"""The phone home: what is waiting for this device, or a cheap "nothing new".

The answer is built as JSON bytes: each pending message's template, rules and content
come from its content compiled once per process (services/sync/contents.py) and the
entry's stored merge-tag texts, so a message costs a join of bytes, not a decode and
re-encode of its whole copy.
"""

from __future__ import annotations

import logging
import time
from typing import Literal

import asyncpg
import orjson
from pydantic import BaseModel, ConfigDict, Field

from services.sync import metrics, repository
from services.sync.auth import Device
from services.sync.contents import CONTENTS, dumps_fields
from shared.personalization.stored import PLATFORM_BITS
from shared.redis_keys import InboxVersions, inbox_version

log = logging.getLogger(__name__)

Platform = Literal["gcm", "apns", "web"]
# The counter's children, looked up once rather than on every phone home.
_COUNTED = {
    (answer, platform): metrics.PHONE_HOMES.labels(answer, platform)
    for answer in ("nothing_new", "changed")
    for platform in PLATFORM_BITS
}


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform: Platform
    cursor: str | None = Field(default=None, max_length=64)


async def current_version(versions: InboxVersions, contact_id: str) -> str:
    """The contact's inbox version (read in a batch with other phone homes'). A missing
    key (new contact, or Redis lost its data) is set to the current time in milliseconds,
    so a version never repeats one a device saw before the loss."""
    value = await versions.get(contact_id)
    if value is None:
        key = inbox_version(contact_id)
        await versions.redis.set(key, int(time.time() * 1000), nx=True)
        value = await versions.redis.get(key)
    return value.decode() if isinstance(value, bytes) else str(value)


async def sync_body(
    pool: asyncpg.Pool,
    versions: InboxVersions,
    device: Device,
    platform: Platform,
    cursor: str | None,
) -> bytes:
    """The phone home's answer as the JSON body the server sends (what any server path
    hands out unchanged)."""
    version = await current_version(versions, device.contact_id)
    current = f"{platform}.{version}"
    tail = (
        b'"cursor":' + orjson.dumps(current)
        + b',"nextSyncAfterSeconds":' + str(device.app.next_sync_after_seconds).encode() + b"}"
    )  # fmt: skip
    if cursor == current:
        _COUNTED[("nothing_new", platform)].inc()
        return b'{"changed":false,' + tail
    _COUNTED[("changed", platform)].inc()
    unread, rows = await repository.phone_home(
        pool, device.contact_id, device.app.app_key, platform, PLATFORM_BITS[platform]
    )
    messages = await _messages(pool, rows, platform)
    return (
        b'{"changed":true,"messages":[' + b",".join(messages)
        + b'],"inboxUnreadCount":' + str(unread).encode() + b"," + tail
    )  # fmt: skip


async def _messages(pool: asyncpg.Pool, rows: list[asyncpg.Record], platform: str) -> list[bytes]:
    contents = await CONTENTS.get_many(
        pool, {r["content_id"] for r in rows if r["template"] is None}
    )
    messages = []
    for row in rows:
        if row["template"] is not None:  # stored rendered
            fields = dumps_fields(row["template"])
        else:
            content = contents.get(row["content_id"])
            rendered = (
                content.message_fields(platform, row["merge_values"] or {}) if content else None
            )
            if rendered is None:  # cannot happen for a filed entry: contents are kept
                log.error("inbox entry without its content", extra={"entry_id": row["id"]})
                continue
            fields = rendered
        expires_at = row["expires_at"]
        messages.append(
            b'{"id":"' + str(row["id"]).encode()
            + b'","inAppContentId":' + orjson.dumps(row["content_id"])
            + b"," + fields
            + b',"maxViews":' + str(row["max_views"]).encode()
            + b',"viewsLeft":' + str(row["max_views"] - row["views"]).encode()
            + b',"priority":' + str(row["priority"]).encode()
            + b',"expiresAt":' + (orjson.dumps(expires_at.isoformat()) if expires_at else b"null")
            + b"}"
        )  # fmt: skip
    return messages
