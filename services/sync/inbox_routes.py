"""The App Inbox calls of the device API (services/sync/inbox.py has the model).

A state change that changed something is published as engagement for statistics (``read``,
``unread``, ``archive``, ``pin``, ``delete``: each counted once per message) and bumps the
contact's inbox version, which wakes its other devices' streams. Setting a state an entry
already has answers the same and tells nobody.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from services.sync import inbox, notify
from services.sync.auth import Device, authenticate
from services.sync.events import Applied
from shared.http_limits import BIGINT_MAX

router = APIRouter(tags=["App Inbox"])
AuthenticatedDevice = Annotated[Device, Depends(authenticate)]
MessageId = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="the inbox entry id")]
Category = Annotated[str | None, Query(min_length=1, max_length=100)]
# "<1 pinned | 0 not>.<id>" of the last entry of the previous page; a plain id (cursors
# handed out before pinning existed) continues after the pinned ones
_CURSOR = re.compile(r"^(?:([01])\.)?([0-9]{1,18})$")
# what statistics count, per action that changed something
_COUNTED = {"read": "read", "unread": "unread", "archive": "archive", "pin": "pin",
            "delete": "delete"}  # fmt: skip


def _after(cursor: str | None) -> tuple[int, int] | None:
    if cursor is None:
        return None
    found = _CURSOR.match(cursor)
    if found is None or int(found[2]) > BIGINT_MAX:
        detail = [{"loc": ["query", "cursor"], "msg": "not a cursor this API gave",
                   "type": "value_error"}]  # fmt: skip
        raise HTTPException(422, detail)
    return int(found[1] or 0), int(found[2])


@router.get("/v1/inbox")
async def list_inbox(
    request: Request,
    device: AuthenticatedDevice,
    cursor: Annotated[str | None, Query(max_length=24)] = None,
    limit: Annotated[int, Query(ge=1, le=inbox.MAX_PAGE)] = 20,
    status: inbox.Status | None = None,
    category: Category = None,
) -> dict[str, Any]:
    """Pinned first, then newest first. ``status``: unread, read, archived or all (default:
    the inbox view, everything not archived); ``category``: one category's messages. Pass
    ``nextCursor`` back as ``cursor`` (with the same filters) for the next page."""
    pool = request.app.state.pool
    rows = await inbox.page(
        pool, device.contact_id, device.app.app_key, status=status, category=category,
        after=_after(cursor), limit=limit + 1,
    )  # fmt: skip
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    return {
        "messages": await inbox.views(pool, rows),
        "nextCursor": f"{int(last['pinned_at'] is not None)}.{last['id']}"
        if more and last
        else None,
    }


@router.get("/v1/inbox/unread-count")
async def unread_count(request: Request, device: AuthenticatedDevice) -> dict[str, Any]:
    """The badge: unread messages not archived, in total and per category."""
    return await inbox.unread_counts(
        request.app.state.pool, device.contact_id, device.app.app_key
    )  # fmt: skip


async def _act(
    request: Request, device: Device, message_id: int, action: inbox.Action
) -> dict[str, Any]:
    row = await inbox.act(
        request.app.state.pool, device.contact_id, device.app.app_key, message_id, action
    )
    if row is None:
        raise HTTPException(404, f"no inbox message {message_id}")
    if row["changed"]:
        await _tell(request, device, action, [row])
    return {"id": str(message_id), action: True, "changed": row["changed"]}


async def _tell(request: Request, device: Device, action: str, rows: list[Any]) -> None:
    if kind := _COUNTED.get(action):
        at = datetime.now(UTC)
        await notify.engagement(request, device, [
            Applied(f"{device.contact_id}:{kind}:{r['id']}", str(r["id"]), kind, at,
                    r["send_job_id"], r["content_id"])
            for r in rows
        ])  # fmt: skip
    await notify.inbox_changed(request, device)


def _action_route(action: inbox.Action) -> None:
    async def act(
        message_id: MessageId, request: Request, device: AuthenticatedDevice
    ) -> dict[str, Any]:
        return await _act(request, device, message_id, action)

    act.__name__ = f"inbox_{action}"
    act.__doc__ = f"``{action}`` one message (idempotent); ``changed`` is false if it was so."
    if action == "delete":
        router.delete("/v1/inbox/{message_id}")(act)
    else:
        router.post(f"/v1/inbox/{{message_id}}/{action}")(act)


for _action in ("read", "unread", "archive", "unarchive", "pin", "unpin", "delete"):
    _action_route(_action)


class BulkAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: str | None = Field(default=None, min_length=1, max_length=100)


async def _bulk(request: Request, device: Device, action: str, body: BulkAction) -> dict[str, Any]:
    rows = await inbox.act_on_all(
        request.app.state.pool, device.contact_id, device.app.app_key, action, body.category
    )
    if rows:
        await _tell(request, device, action, rows)
    return {"action": action, "changed": len(rows)}


@router.post("/v1/inbox/read-all")
async def read_all(
    request: Request, device: AuthenticatedDevice, body: BulkAction | None = None
) -> dict[str, Any]:
    """Mark every message of the inbox view read (of one ``category`` if given)."""
    return await _bulk(request, device, "read", body or BulkAction())


@router.post("/v1/inbox/archive-all")
async def archive_all(
    request: Request, device: AuthenticatedDevice, body: BulkAction | None = None
) -> dict[str, Any]:
    """Archive every message of the inbox view (of one ``category`` if given)."""
    return await _bulk(request, device, "archive", body or BulkAction())
