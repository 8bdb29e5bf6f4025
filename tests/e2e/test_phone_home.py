"""The phone home and device events on the real stack: per-platform payloads, maxViews,
clicks, expiry, the cheap "nothing new" answer, and isolation between contacts."""

from __future__ import annotations

import asyncio
import copy
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from tests.e2e.conftest import Operator
from tests.seed_payloads import BOTTOM_BANNER


def view(message_id: str, event_id: str | None = None, kind: str = "view") -> dict[str, str]:
    return {
        "eventId": event_id or uuid.uuid4().hex,
        "messageId": message_id,
        "type": kind,
        "at": datetime.now(UTC).isoformat(),
    }


async def phone_home(
    device_api: httpx.AsyncClient, headers: dict[str, str], platform: str = "gcm", **body: Any
) -> dict[str, Any]:
    response = await device_api.post(
        "/v1/sync", json={"platform": platform, **body}, headers=headers
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_each_platform_gets_its_own_personalized_payload(
    operator: Operator, device_api: httpx.AsyncClient
) -> None:
    body = copy.deepcopy(BOTTOM_BANNER)
    body["payload"]["apns"]["content"]["title"] = "Hi %%First_Name%%, from iOS"
    body["payload"]["apns"]["template"] = "ios-banner"
    content_id = await operator.inapp(**body)
    who = await operator.contact("plat")
    job = await operator.send(
        {"inAppMessage": {"inAppContentId": content_id}},
        [who],
        personalizationDefaults={"first_name": "Michael"},
    )
    await operator.delivered(job)
    headers = operator.device(who)
    gcm = (await phone_home(device_api, headers, "gcm"))["messages"]
    apns = (await phone_home(device_api, headers, "apns"))["messages"]
    web = (await phone_home(device_api, headers, "web"))["messages"]
    assert [(m["template"], m["content"]["title"]) for m in gcm] == [("default", "Hello Michael")]
    assert [(m["template"], m["content"]["title"]) for m in apns] == [
        ("ios-banner", "Hi Michael, from iOS")
    ]
    assert web == []  # the content has no web payload


async def test_max_views_3_allows_exactly_3_counted_views_despite_duplicates_and_races(
    operator: Operator, device_api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    content_id = await operator.inapp()
    who = await operator.contact("views")
    job = await operator.send(
        {"inAppMessage": {"inAppContentId": content_id, "maxViews": 3}}, [who]
    )
    await operator.delivered(job)
    headers = operator.device(who)
    [message] = (await phone_home(device_api, headers))["messages"]
    assert message["viewsLeft"] == 3
    repeated = view(message["id"])
    batches = [[view(message["id"]), repeated] for _ in range(10)]  # two devices, ten reports

    async def report(events: list[dict[str, str]]) -> int:
        response = await device_api.post("/v1/events", json={"events": events}, headers=headers)
        return response.status_code

    assert set(await asyncio.gather(*(report(b) for b in batches))) == {200}
    assert (
        await pool.fetchval("SELECT views FROM inbox_entries WHERE id = $1", int(message["id"]))
        == 3
    )
    counted = await pool.fetchval(
        "SELECT count(*) FROM engagement_events WHERE entry_id = $1 AND counted", int(message["id"])
    )
    assert counted == 3
    assert (await phone_home(device_api, headers))["messages"] == []


async def test_views_count_down_and_a_click_removes_whatever_views_are_left(
    operator: Operator, device_api: httpx.AsyncClient
) -> None:
    content_id = await operator.inapp()
    who = await operator.contact("click")
    job = await operator.send(
        {"inAppMessage": {"inAppContentId": content_id, "maxViews": 5}}, [who]
    )
    await operator.delivered(job)
    headers = operator.device(who)
    [message] = (await phone_home(device_api, headers))["messages"]
    await device_api.post("/v1/events", json={"events": [view(message["id"])]}, headers=headers)
    [seen] = (await phone_home(device_api, headers))["messages"]
    assert seen["viewsLeft"] == 4
    click = view(message["id"], kind="click")
    response = await device_api.post("/v1/events", json={"events": [click]}, headers=headers)
    assert response.json()["accepted"] == 1
    assert (await phone_home(device_api, headers))["messages"] == []


async def test_an_expired_message_is_never_returned(
    operator: Operator, device_api: httpx.AsyncClient
) -> None:
    content_id = await operator.inapp()
    who = await operator.contact("exp")
    soon = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    job = await operator.send(
        {"inAppMessage": {"inAppContentId": content_id, "expirationDate": soon}}, [who]
    )
    await operator.delivered(job)
    headers = operator.device(who)
    [message] = (await phone_home(device_api, headers))["messages"]
    assert datetime.fromisoformat(message["expiresAt"]) <= datetime.fromisoformat(soon)
    await asyncio.sleep(3.5)
    assert (await phone_home(device_api, headers))["messages"] == []


async def test_an_unchanged_cursor_gets_nothing_new_until_the_inbox_changes(
    operator: Operator, device_api: httpx.AsyncClient
) -> None:
    content_id = await operator.inapp()
    who = await operator.contact("cursor")
    headers = operator.device(who)
    empty = await phone_home(device_api, headers)
    assert empty["changed"] is True and empty["messages"] == []
    again = await phone_home(device_api, headers, cursor=empty["cursor"])
    assert again == {"changed": False, "cursor": empty["cursor"], "nextSyncAfterSeconds": 900}
    job = await operator.send({"inAppMessage": {"inAppContentId": content_id}}, [who])
    await operator.delivered(job)
    fresh = await phone_home(device_api, headers, cursor=empty["cursor"])
    assert fresh["changed"] is True and len(fresh["messages"]) == 1
    assert fresh["cursor"] != empty["cursor"]


async def test_a_device_cannot_touch_another_contacts_messages(
    operator: Operator, device_api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    content_id = await operator.inapp()
    owner, other = await operator.contact("owner"), await operator.contact("other")
    job = await operator.send({"inAppMessage": {"inAppContentId": content_id}}, [owner])
    await operator.delivered(job)
    [message] = (await phone_home(device_api, operator.device(owner)))["messages"]
    intruder = operator.device(other)
    assert (await phone_home(device_api, intruder))["messages"] == []
    stolen = await device_api.post(
        "/v1/events", json={"events": [view(message["id"], kind="click")]}, headers=intruder
    )
    assert stolen.status_code == 404
    for method, path in (("POST", f"/v1/inbox/{message['id']}/read"),
                         ("DELETE", f"/v1/inbox/{message['id']}")):  # fmt: skip
        assert (await device_api.request(method, path, headers=intruder)).status_code == 404
    row = await pool.fetchrow(
        "SELECT views, clicked_at, deleted_at FROM inbox_entries WHERE id = $1", int(message["id"])
    )
    assert row is not None
    assert dict(row) == {"views": 0, "clicked_at": None, "deleted_at": None}


async def test_bad_events_are_refused_and_change_nothing(
    operator: Operator, device_api: httpx.AsyncClient
) -> None:
    who = await operator.contact("bad")
    headers = operator.device(who)
    short_id = {**view("1"), "eventId": "short"}
    cases = [[], [short_id], [{**view("1"), "type": "like"}], [{**view("1"), "at": "yesterday"}]]
    for events in cases:
        response = await device_api.post("/v1/events", json={"events": events}, headers=headers)
        assert response.status_code == 422, (events, response.text)


async def test_nothing_new_answers_carry_cors_headers_for_web_pages(
    operator: Operator, device_api: httpx.AsyncClient
) -> None:
    headers = {**operator.device(await operator.contact("cors")), "Origin": "https://shop.example"}
    first = await device_api.post("/v1/sync", json={"platform": "web"}, headers=headers)
    again = await device_api.post(
        "/v1/sync", json={"platform": "web", "cursor": first.json()["cursor"]}, headers=headers
    )
    assert again.json()["changed"] is False
    for response in (first, again):
        assert response.headers["access-control-allow-origin"] == "*"
    preflight = await device_api.options(
        "/v1/sync",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,x-app-key,content-type"},
    )  # fmt: skip
    assert preflight.status_code == 200
