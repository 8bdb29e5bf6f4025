"""Subscription preferences from the device, on the real stack: the operator declares an
app's categories, a device reads and changes its contact's choices, the change travels
pigeonhole.contacts like any contact update, and delivery honours it."""

from __future__ import annotations

import uuid

import httpx
import orjson
import pytest
from aiokafka.structs import ConsumerRecord

from shared.events import ContactUpserted
from shared.settings import CommonSettings
from shared.topics import CONTACTS
from tests.conftest import device_token
from tests.e2e.test_delivery_decisions import Outcomes, outcomes, publish, send
from tests.kafka_tap import TopicTap

__all__ = ["outcomes"]  # the fixture, used by name

pytestmark = pytest.mark.e2e

CATEGORIES = [
    {"name": "offers", "description": "Discounts and promotions"},
    {"name": "news", "description": "Product news"},
]


class ContactUpdates(TopicTap):
    def __init__(self, bootstrap: str) -> None:
        super().__init__(bootstrap, CONTACTS)
        self.seen: list[ContactUpserted] = []

    def on_message(self, message: ConsumerRecord[bytes, bytes]) -> None:
        self.seen.append(ContactUpserted.model_validate_json(message.value))


def _device(app: dict[str, str], contact_id: str) -> dict[str, str]:
    token = device_token(app["appSecret"], contact_id)
    return {"X-App-Key": app["appKey"], "Authorization": f"Bearer {token}"}


async def _declare(api: httpx.AsyncClient, app_key: str) -> None:
    response = await api.put(f"/apps/{app_key}/categories", json={"categories": CATEGORIES})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["categories"] == CATEGORIES


async def test_a_device_opting_out_makes_delivery_skip_unsubscribed(
    api: httpx.AsyncClient,
    device_api: httpx.AsyncClient,
    app: dict[str, str],
    outcomes: Outcomes,
    settings: CommonSettings,
) -> None:
    await _declare(api, app["appKey"])
    who = f"prefs-{uuid.uuid4().hex[:8]}"
    assert (await api.put(f"/contacts/{who}", json={"attributes": {}})).status_code == 201
    device = _device(app, who)

    shown = await device_api.get("/v1/preferences", headers=device)
    assert shown.status_code == 200, shown.text
    assert shown.json()["categories"] == [{**c, "subscribed": True} for c in CATEGORIES]

    async with ContactUpdates(settings.kafka_bootstrap) as updates:
        changed = await device_api.put(
            "/v1/preferences", headers=device, json={"subscriptions": {"offers": False}}
        )
        assert changed.status_code == 200, changed.text
        assert [c["subscribed"] for c in changed.json()["categories"]] == [False, True]
        offers, news = await publish(api, category="offers"), await publish(api, category="news")
        skipped = await send(api, offers, app["appKey"], [who])
        assert await outcomes.of(skipped) == [(who, "unsubscribed")]
        assert await outcomes.of(await send(api, news, app["appKey"], [who])) == [
            (who, "delivered")
        ]
    mine = [u for u in updates.seen if u.contact_id == who]
    assert [u.subscriptions for u in mine] == [{"offers": False}]

    again = await device_api.put(
        "/v1/preferences", headers=device, json={"subscriptions": {"offers": True}}
    )
    assert [c["subscribed"] for c in again.json()["categories"]] == [True, True]
    back = await send(api, offers, app["appKey"], [who])
    assert await outcomes.of(back) == [(who, "delivered")]
    contact = (await api.get(f"/contacts/{who}")).json()["data"]
    assert contact["subscriptions"] == {"offers": True}


async def test_bad_changes_are_refused_naming_the_category_and_change_nothing(
    api: httpx.AsyncClient, device_api: httpx.AsyncClient, app: dict[str, str]
) -> None:
    await _declare(api, app["appKey"])
    who = f"prefs-{uuid.uuid4().hex[:8]}"
    device = _device(app, who)
    for body, status in (
        ({"subscriptions": {"offers": False, "lottery": False}}, 422),
        ({"subscriptions": {"offers": "no"}}, 422),
        ({"subscriptions": {}}, 422),
        ({"subscriptions": {"offers": False}, "extra": 1}, 422),
        ([1, 2], 422),
    ):
        refused = await device_api.put("/v1/preferences", headers=device, json=body)
        assert refused.status_code == status, (body, refused.text)
    undeclared = await device_api.put(
        "/v1/preferences", headers=device, json={"subscriptions": {"lottery": False}}
    )
    assert undeclared.json()["detail"][0]["loc"] == ["body", "subscriptions", "lottery"]
    shown = await device_api.get("/v1/preferences", headers=device)
    assert all(c["subscribed"] for c in shown.json()["categories"])
    assert (await api.get(f"/contacts/{who}")).status_code == 404  # nothing was stored
    other = _device({**app, "appSecret": "not-the-secret"}, who)
    assert (await device_api.get("/v1/preferences", headers=other)).status_code == 401


async def test_categories_are_validated_and_shown_with_the_app(
    api: httpx.AsyncClient, app: dict[str, str]
) -> None:
    key = app["appKey"]
    for body in (
        {"categories": [{"name": "a"}, {"name": "a"}]},
        {"categories": [{"name": ""}]},
        {"categories": [{"name": "x" * 101}]},
        {"categories": [{"name": f"c{i}"} for i in range(51)]},
        {"categories": [{"name": "a", "colour": "red"}]},
    ):
        refused = await api.put(f"/apps/{key}/categories", json=body)
        assert refused.status_code == 400, (body, refused.text)
        assert refused.json()["meta"]["fieldErrors"], refused.text
    missing = await api.put("/apps/no-such-app/categories", json={"categories": []})
    assert missing.status_code == 404
    await _declare(api, key)
    shown = (await api.get(f"/apps/{key}")).json()["data"]
    assert shown["categories"] == CATEGORIES
    assert orjson.loads((await api.get(f"/apps/{key}/categories")).content)["data"] == {
        "appKey": key,
        "categories": CATEGORIES,
    }
