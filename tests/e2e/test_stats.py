"""GET /stats matches what happened: targeted, delivered, skipped by reason, and
engagement, by campaign, send job, content and tag; test sends are left out."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from tests.e2e.conftest import Operator


async def stats_when(
    api: httpx.AsyncClient, params: dict[str, Any], expected: dict[str, Any], within: float = 30
) -> dict[str, Any]:
    """The figures, once they match (statistics follow Kafka), or the last seen."""
    deadline = time.monotonic() + within
    while True:
        response = await api.get("/stats", params=params)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        if all(data.get(k) == v for k, v in expected.items()) or time.monotonic() > deadline:
            return data
        await asyncio.sleep(0.3)


async def test_stats_follow_a_campaign_from_launch_to_engagement(
    operator: Operator, api: httpx.AsyncClient, device_api: httpx.AsyncClient
) -> None:
    run, tag = uuid.uuid4().hex[:8], f"stats-{uuid.uuid4().hex[:8]}"
    ids = [f"st-{run}-{i}" for i in range(6)]
    lines = [
        orjson.dumps({"contactId": c, "attributes": {"run": run},
                      "subscriptions": {"news": i >= 2}})  # the first two opted out
        for i, c in enumerate(ids)
    ]  # fmt: skip
    await api.post("/contacts/batch", content=b"\n".join(lines),
                   headers={"content-type": "application/x-ndjson"})  # fmt: skip
    source = (
        await api.post(
            "/contact-sources",
            json={"name": "s", "contactIds": [*ids, f"st-{run}-ghost"]},
        )
    ).json()["data"]["id"]
    content_id = await operator.inapp(category="news", tags=[tag])
    campaign = (
        await api.post(
            "/campaigns",
            json={"name": "stats", "content": {"inAppMessage": {"inAppContentId": content_id,
                                                                "maxViews": 2}},
                  "include": [source], "appKeys": [operator.app["appKey"]], "startNow": True},
        )
    ).json()["data"]["id"]  # fmt: skip
    # a test send of the same content must not show up in any figure
    test_contact = await operator.contact("tester")
    test_send = {"contactIds": [test_contact], "appKeys": [operator.app["appKey"]]}
    await api.post(f"/channels/push/inappcontent/{content_id}/test", json=test_send)

    delivered = await stats_when(api, {"campaignId": campaign}, {"delivered": 4})
    assert delivered["targeted"] == 6  # the unknown listed id never becomes a recipient
    assert delivered["skipped"]["unsubscribed"] == 2
    await operator.delivered(campaign, 4)

    now = datetime.now(UTC).isoformat()
    for n, contact in enumerate(ids[2:]):
        headers = operator.device(contact)
        [message] = (await device_api.post("/v1/sync", json={"platform": "gcm"},
                                           headers=headers)).json()["messages"]  # fmt: skip
        kinds = ["view", "view"] + (["click"] if n == 0 else []) + (["dismiss"] if n == 1 else [])
        events = [{"eventId": uuid.uuid4().hex, "messageId": message["id"], "type": kind, "at": now}
                  for kind in kinds]  # fmt: skip
        response = await device_api.post("/v1/events", json={"events": events}, headers=headers)
        assert response.status_code == 200, response.text

    expected = {"targeted": 6, "delivered": 4, "viewed": 4, "clicked": 1, "dismissed": 1,
                "read": 0, "deleted": 0}  # fmt: skip
    by_campaign = await stats_when(api, {"campaignId": campaign}, expected)
    assert {k: by_campaign[k] for k in expected} == expected
    assert by_campaign["skipped"] == {"unknown_contact": 0, "expired": 0, "unsubscribed": 2,
                                      "frequency_capped": 0, "unknown_content": 0,
                                      "personalization_failed": 0, "holdout": 0}  # fmt: skip
    for params in ({"contentId": content_id}, {"tag": tag}, {"sendJobId": campaign}):
        figures = await stats_when(api, params, expected)
        assert {k: figures[k] for k in expected} == expected, params


async def test_stats_need_exactly_one_filter(api: httpx.AsyncClient) -> None:
    assert (await api.get("/stats")).status_code == 400
    assert (await api.get("/stats", params={"tag": "a", "contentId": "b"})).status_code == 400
