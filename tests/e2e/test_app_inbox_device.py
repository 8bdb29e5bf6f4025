"""The App Inbox from the device side: paging, unread count, read, delete."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import Operator


async def test_inbox_pages_newest_first_and_read_and_delete_change_what_is_seen(
    operator: Operator, device_api: httpx.AsyncClient
) -> None:
    who = await operator.contact("inbox", first_name="Ada")
    jobs = []
    for n in range(5):
        content_id = await operator.inbox_message(
            f"Message {n}", url="https://shop.example/%%first_name%%"
        )
        jobs.append(await operator.send({"inboxMessage": {"inboxContentId": content_id}}, [who]))
    for job in jobs:
        await operator.delivered(job)
    headers = operator.device(who)

    first = (await device_api.get("/v1/inbox", params={"limit": 2}, headers=headers)).json()
    second = (
        await device_api.get(
            "/v1/inbox", params={"limit": 2, "cursor": first["nextCursor"]}, headers=headers
        )
    ).json()
    third = (
        await device_api.get(
            "/v1/inbox", params={"limit": 2, "cursor": second["nextCursor"]}, headers=headers
        )
    ).json()
    titles = [m["title"] for page in (first, second, third) for m in page["messages"]]
    assert titles == ["Message 4", "Message 3", "Message 2", "Message 1", "Message 0"]
    assert third["nextCursor"] is None
    newest = first["messages"][0]
    assert newest["text"] == "Hi Ada" and newest["url"] == "https://shop.example/Ada"
    assert newest["read"] is False

    async def unread() -> int:
        response = await device_api.get("/v1/inbox/unread-count", headers=headers)
        count: int = response.json()["unreadCount"]
        return count

    assert await unread() == 5
    for _ in range(2):  # reading twice is harmless
        read = await device_api.post(f"/v1/inbox/{newest['id']}/read", headers=headers)
        assert read.status_code == 200
    assert await unread() == 4
    deleted = await device_api.delete(f"/v1/inbox/{first['messages'][1]['id']}", headers=headers)
    assert deleted.status_code == 200
    assert await unread() == 3
    remaining = (await device_api.get("/v1/inbox", headers=headers)).json()["messages"]
    assert [m["title"] for m in remaining] == ["Message 4", "Message 2", "Message 1", "Message 0"]
    assert remaining[0]["read"] is True
    assert (
        await device_api.delete(f"/v1/inbox/{first['messages'][1]['id']}", headers=headers)
    ).status_code == 404
    sync = (await device_api.post("/v1/sync", json={"platform": "web"}, headers=headers)).json()
    assert sync["inboxUnreadCount"] == 3


async def test_inbox_limit_is_capped(operator: Operator, device_api: httpx.AsyncClient) -> None:
    headers = operator.device(await operator.contact("cap"))
    response = await device_api.get("/v1/inbox", params={"limit": 1000}, headers=headers)
    assert response.status_code == 422


async def test_the_web_sdk_is_served(device_api: httpx.AsyncClient) -> None:
    """Both builds load from any origin (an ES module is fetched with CORS); the first
    script's address still serves the classic build."""
    for name in ("pigeonhole.mjs", "pigeonhole.js", "inbox.js"):
        response = await device_api.get(f"/sdk/{name}", headers={"Origin": "https://shop.test"})
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith("text/javascript")
        assert response.headers["access-control-allow-origin"] == "*"
        assert "mountInbox" in response.text
    assert (await device_api.get("/sdk/inbox.js")).text == (
        await device_api.get("/sdk/pigeonhole.js")
    ).text
    missing = await device_api.get("/sdk/..%2Fmain.py")
    assert missing.status_code == 404
