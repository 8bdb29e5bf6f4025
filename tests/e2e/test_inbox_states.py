"""The App Inbox state model on the real stack: read/unread, archive, pin, delete, bulk
actions, filters, pinned first, per-category badges, what other devices hear, and the
statistics."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Operator
from tests.e2e.test_stream import opened

pytestmark = pytest.mark.e2e


async def _deliver(operator: Operator, who: str, titles: list[str], **content: Any) -> list[str]:
    """Send one inbox message per title (in order); the entry ids, newest first."""
    for title in titles:
        message = await operator.inbox_message(title, **content)
        job = await operator.send({"inboxMessage": {"inboxContentId": message}}, [who])
        await operator.delivered(job)
    return [m["id"] for m in await _listed(operator, who, status="all")][: len(titles)]


async def _listed(operator: Operator, who: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of GET /v1/inbox with ``params``, in order."""
    found: list[dict[str, Any]] = []
    cursor = None
    async with httpx.AsyncClient(base_url="http://127.0.0.1:8081", timeout=30) as device:
        while True:
            query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
            answer = await device.get("/v1/inbox", params=query, headers=operator.device(who))
            assert answer.status_code == 200, answer.text
            found += answer.json()["messages"]
            if (cursor := answer.json()["nextCursor"]) is None:
                return found


async def _act(device_api: httpx.AsyncClient, headers: dict[str, str], path: str) -> Any:
    method = device_api.delete if path.endswith("delete") else device_api.post
    url = f"/v1/inbox/{path.removesuffix('/delete')}"
    answer = await method(url, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_states_toggle_filter_and_count(
    operator: Operator, device_api: httpx.AsyncClient
) -> None:
    who = await operator.contact("states")
    device = operator.device(who)
    offers = await _deliver(operator, who, ["o1", "o2"], category="offers")
    news = await _deliver(operator, who, ["n1"], category="news")
    plain = await _deliver(operator, who, ["p1"])
    badge = (await device_api.get("/v1/inbox/unread-count", headers=device)).json()
    assert badge == {
        "unreadCount": 4,
        "byCategory": [
            {"category": "news", "unread": 1},
            {"category": "offers", "unread": 2},
            {"category": None, "unread": 1},
        ],
    }

    assert (await _act(device_api, device, f"{offers[0]}/read"))["changed"] is True
    assert (await _act(device_api, device, f"{offers[0]}/read"))["changed"] is False
    await _act(device_api, device, f"{news[0]}/archive")
    await _act(device_api, device, f"{plain[0]}/pin")
    await _act(device_api, device, f"{offers[1]}/delete")

    inbox_view = await _listed(operator, who)
    assert [m["id"] for m in inbox_view] == [plain[0], offers[0]]  # pinned first
    assert [(m["pinned"], m["read"], m["category"]) for m in inbox_view] == [
        (True, False, None), (False, True, "offers"),
    ]  # fmt: skip
    assert [m["id"] for m in await _listed(operator, who, status="archived")] == news
    assert [m["id"] for m in await _listed(operator, who, status="unread")] == plain
    assert [m["id"] for m in await _listed(operator, who, status="read")] == [offers[0]]
    assert [m["id"] for m in await _listed(operator, who, category="offers")] == [offers[0]]
    counts = (await device_api.get("/v1/inbox/unread-count", headers=device)).json()
    assert counts == {"unreadCount": 1, "byCategory": [{"category": None, "unread": 1}]}

    await _act(device_api, device, f"{offers[0]}/unread")
    await _act(device_api, device, f"{news[0]}/unarchive")
    await _act(device_api, device, f"{plain[0]}/unpin")
    assert [m["id"] for m in await _listed(operator, who)] == [plain[0], news[0], offers[0]]
    assert (await device_api.get("/v1/inbox/unread-count", headers=device)).json()[
        "unreadCount"
    ] == 3

    stranger = operator.device(await operator.contact("stranger"))
    for action in ("read", "unread", "archive", "pin"):
        refused = await device_api.post(f"/v1/inbox/{plain[0]}/{action}", headers=stranger)
        assert refused.status_code == 404
    assert (await device_api.get("/v1/inbox?status=bogus", headers=device)).status_code == 422
    assert (await device_api.get("/v1/inbox?cursor=2.5", headers=device)).status_code == 422


async def test_pinned_first_pages_through_every_message_once(
    operator: Operator, device_api: httpx.AsyncClient
) -> None:
    who = await operator.contact("pages")
    ids = await _deliver(operator, who, [f"m{i}" for i in range(7)])  # newest first
    for pinned in (ids[3], ids[5]):
        await _act(device_api, operator.device(who), f"{pinned}/pin")
    listed = [m["id"] for m in await _listed(operator, who)]
    assert listed == [ids[3], ids[5], *[i for i in ids if i not in (ids[3], ids[5])]]


async def test_another_devices_read_archive_and_delete_reach_the_stream(
    operator: Operator, device_api: httpx.AsyncClient
) -> None:
    who = await operator.contact("two")
    first, second = await _deliver(operator, who, ["a", "b"], category="offers")
    phone, laptop = operator.device(who), operator.device(who)
    async with opened(device_api, laptop) as stream:
        assert (await stream.next())["data"]["inboxUnreadCount"] == 2
        await _act(device_api, phone, f"{first}/read")
        assert (await stream.next())["data"]["inboxUnreadCount"] == 1
        await _act(device_api, phone, f"{second}/archive")
        event = (await stream.next())["data"]
        assert event["inboxUnreadCount"] == 0 and event["unreadByCategory"] == []
        await _act(device_api, phone, f"{first}/delete")
        await stream.next()  # the delete is a change too
    assert await _listed(operator, who, status="all") == [
        m for m in await _listed(operator, who, status="archived")
    ]


async def test_bulk_actions_during_deliveries_leave_counts_exact(
    operator: Operator, device_api: httpx.AsyncClient
) -> None:
    who = await operator.contact("bulk")
    device = operator.device(who)
    await _deliver(operator, who, ["x1", "x2", "x3"], category="news")
    await _deliver(operator, who, ["y1", "y2"], category="offers")
    read = await device_api.post("/v1/inbox/read-all", headers=device, json={"category": "offers"})
    assert read.json() == {"action": "read", "changed": 2}
    assert (await device_api.get("/v1/inbox/unread-count", headers=device)).json() == {
        "unreadCount": 3, "byCategory": [{"category": "news", "unread": 3}],
    }  # fmt: skip

    more = [await operator.inbox_message(f"late{i}", category="news") for i in range(6)]
    sends = [
        operator.send({"inboxMessage": {"inboxContentId": m}}, [who]) for m in more
    ]  # fmt: skip
    jobs, answers = await asyncio.gather(
        asyncio.gather(*sends),
        asyncio.gather(*(device_api.post("/v1/inbox/read-all", headers=device) for _ in range(3))),
    )
    for job in jobs:
        await operator.delivered(job)
    marked = sum(a.json()["changed"] for a in answers)
    everything = await _listed(operator, who, status="all")
    unread = [m for m in everything if not m["read"]]
    assert len(everything) == 11
    assert marked == 3 + 6 - len(unread)  # each entry marked once, by one of the calls
    badge = (await device_api.get("/v1/inbox/unread-count", headers=device)).json()
    assert badge["unreadCount"] == len(unread) == len(await _listed(operator, who, status="unread"))

    archived = await device_api.post("/v1/inbox/archive-all", headers=device)
    assert archived.json()["changed"] == 11
    assert await _listed(operator, who) == []
    assert (await device_api.get("/v1/inbox/unread-count", headers=device)).json() == {
        "unreadCount": 0, "byCategory": [],
    }  # fmt: skip
    for body in ({"category": ""}, {"category": "x" * 101}, {"other": 1}, [1]):
        refused = await device_api.post("/v1/inbox/read-all", headers=device, json=body)
        assert refused.status_code == 422, body


async def test_state_changes_are_counted_in_statistics(
    operator: Operator, device_api: httpx.AsyncClient
) -> None:
    tag = f"states-{uuid.uuid4().hex[:8]}"
    who = await operator.contact("counted")
    device = operator.device(who)
    [entry] = await _deliver(operator, who, ["s"], tags=[tag])
    for action in ("read", "unread", "read", "archive", "unarchive", "archive", "pin"):
        await _act(device_api, device, f"{entry}/{action}")
    expected = {"read": 1, "unread": 1, "archived": 1, "pinned": 1, "deleted": 0}
    for _ in range(100):
        stats = (await operator.api.get("/stats", params={"tag": tag})).json()["data"]
        if {k: stats[k] for k in expected} == expected:
            break
        await asyncio.sleep(0.2)
    assert {k: stats[k] for k in expected} == expected
