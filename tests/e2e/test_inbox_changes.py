"""Delta sync on the running stack: two devices of one contact, each keeping its copy of
the App Inbox by applying ``GET /v1/inbox/changes``, hold exactly what
``GET /v1/inbox?status=all`` lists after interleaved deliveries, reads, archiving,
pinning, deletes and an expiry; bad cursors are refused with a 4xx naming them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Operator

pytestmark = pytest.mark.e2e


class DeviceCopy:
    """One device's copy of the inbox, kept by applying every delta."""

    def __init__(self, api: httpx.AsyncClient, headers: dict[str, str], limit: int = 100) -> None:
        self.api, self.headers, self.limit = api, headers, limit
        self.entries: dict[str, dict[str, Any]] = {}
        self.cursor: str | None = None

    async def pull(self) -> None:
        more = True
        while more:
            params: dict[str, Any] = {"limit": self.limit}
            if self.cursor is not None:
                params["since"] = self.cursor
            response = await self.api.get("/v1/inbox/changes", params=params, headers=self.headers)
            assert response.status_code == 200, response.text
            answer = response.json()
            for entry_id in answer["removed"]:
                self.entries.pop(entry_id, None)
            self.entries.update((view["id"], view) for view in answer["upserted"])
            self.cursor, more = answer["cursor"], answer["more"]

    async def act(self, entry_id: str, action: str) -> None:
        if action == "delete":
            response = await self.api.delete(f"/v1/inbox/{entry_id}", headers=self.headers)
        else:
            response = await self.api.post(f"/v1/inbox/{entry_id}/{action}", headers=self.headers)
        assert response.status_code == 200, response.text


async def listed(api: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Every entry GET /v1/inbox?status=all lists, page after page."""
    entries: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {"status": "all", "limit": 100}
    while True:
        page = (await api.get("/v1/inbox", params=params, headers=headers)).json()
        entries.update((view["id"], view) for view in page["messages"])
        if page["nextCursor"] is None:
            return entries
        params["cursor"] = page["nextCursor"]


async def test_two_devices_applying_every_delta_hold_what_the_inbox_lists(
    operator: Operator, device_api: httpx.AsyncClient
) -> None:
    who = await operator.contact("delta", first_name="Ada")
    headers = operator.device(who)
    content = await operator.inbox_message("Hello")

    async def deliver(count: int = 1, **message: Any) -> None:
        for _ in range(count):
            job = await operator.send(
                {"inboxMessage": {"inboxContentId": content, **message}}, [who]
            )
            await operator.delivered(job)

    async def both_exact() -> None:
        await phone.pull()
        await tablet.pull()
        truth = await listed(device_api, headers)
        assert phone.entries == truth and tablet.entries == truth

    await deliver(3)
    phone, tablet = DeviceCopy(device_api, headers), DeviceCopy(device_api, headers, limit=2)
    await both_exact()
    first, second, third = sorted(phone.entries, key=int)
    assert phone.entries[first]["text"] == "Hi Ada"

    await phone.act(first, "read")
    await deliver()
    await tablet.pull()  # sees the read and the new message
    assert tablet.entries[first]["read"] is True and len(tablet.entries) == 4
    await tablet.act(second, "delete")
    await tablet.act(third, "archive")
    await phone.act(first, "pin")
    await deliver()
    await phone.act(first, "unread")
    await both_exact()
    assert second not in phone.entries and phone.entries[third]["archived"] is True

    soon = datetime.now(UTC) + timedelta(seconds=2)
    await deliver(expirationDate=soon.isoformat())
    await both_exact()
    assert len(phone.entries) == 5
    for _ in range(100):  # until the database's clock passes it
        if len(await listed(device_api, headers)) == 4:
            break
        await asyncio.sleep(0.2)
    await both_exact()
    assert len(phone.entries) == 4

    other = operator.device(await operator.contact("delta-other"))
    stranger = DeviceCopy(device_api, other)
    await stranger.pull()
    assert stranger.entries == {}


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"since": "not-a-cursor"}, 422),
        ({"since": "1.2.3"}, 422),
        ({"since": "9" * 19 + ".1"}, 422),  # a transaction not yet begun
        ({"since": "0.0"}, 410),  # older than any removal kept
        ({"limit": 0}, 422),
        ({"limit": 1000}, 422),
    ],
)
async def test_a_bad_cursor_or_limit_is_refused_naming_it(
    operator: Operator, device_api: httpx.AsyncClient, params: dict[str, Any], status: int
) -> None:
    headers = operator.device(await operator.contact("delta-bad"))
    response = await device_api.get("/v1/inbox/changes", params=params, headers=headers)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    if status == 410:
        assert "without since" in detail
    else:
        assert detail[0]["loc"] == ["query", next(iter(params))]


async def test_the_changes_need_a_device(device_api: httpx.AsyncClient) -> None:
    response = await device_api.get("/v1/inbox/changes")
    assert response.status_code == 401
