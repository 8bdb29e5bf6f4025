"""URL safety at publish: in-app content and App Inbox messages carry only http(s) URLs
and the deep links apps declare; a script URL is refused with 400 and nothing is stored."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.seed_payloads import BOTTOM_BANNER, IMAGE_TEMPLATE, seed_send

HOSTILE = [
    "javascript:alert(document.cookie)",
    " JaVaScRiPt:alert(1)",
    "java\tscript:alert(1)",
    "\u0001javascript:alert(1)",
    "vbscript:msgbox(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "file:///etc/passwd",
]


def inapp(action_value: str, name: str, **content: Any) -> dict[str, Any]:
    body = copy.deepcopy(BOTTOM_BANNER)
    body["name"] = name
    for template in body["payload"].values():
        template["content"]["action"] = {"type": "url", "value": action_value}
        template["content"].update(content)
    return body


async def _stored(pool: asyncpg.Pool, name: str) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM contents WHERE name = $1", name)
    return count


@pytest.mark.parametrize("value", HOSTILE)
async def test_a_script_action_url_in_inapp_content_is_refused_and_nothing_is_stored(
    value: str, api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    name = f"hostile-{uuid.uuid4().hex[:8]}"
    answer = await api.post("/channels/push/inappcontent", json=inapp(value, name))
    assert answer.status_code == 400, answer.text
    fields = answer.json()["meta"]["fieldErrors"]
    assert "payload.gcm.content.action.value" in fields
    assert "payload.apns.content.action.value" in fields
    assert await _stored(pool, name) == 0


@pytest.mark.parametrize("field", ["mainImage", "icon", "video"])
async def test_media_fields_take_only_web_urls(field: str, api: httpx.AsyncClient) -> None:
    body = inapp("https://example.com", "media", **{field: "data:image/png;base64,AAAA"})
    answer = await api.post("/channels/push/inappcontent", json=body)
    assert answer.status_code == 400
    assert f"payload.gcm.content.{field}" in answer.json()["meta"]["fieldErrors"]


async def test_web_urls_icon_names_and_merge_tags_are_published(api: httpx.AsyncClient) -> None:
    body = copy.deepcopy(IMAGE_TEMPLATE)
    for template in body["payload"].values():
        template["content"]["image"] = "https://cdn.example.com/a.png"
        template["content"]["action"] = {"type": "url", "value": "%%Landing_Page%%"}
    assert (await api.post("/channels/push/inappcontent", json=body)).status_code == 201
    seed = await api.post("/channels/push/inappcontent", json=BOTTOM_BANNER)  # icon "note"
    assert seed.status_code == 201


@pytest.mark.parametrize(
    ("field", "value"),
    [("url", " javascript:alert(1)"), ("image", "data:image/png;base64,AA"), ("logo", "file:///x")],
)
async def test_app_inbox_messages_are_held_to_the_same_rule(
    field: str, value: str, api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    name = f"hostile-inbox-{uuid.uuid4().hex[:8]}"
    body = {"name": name, "title": "Hi", "text": "There", field: value}
    answer = await api.post("/appinbox/messages", json=body)
    assert answer.status_code == 400, answer.text
    assert field in answer.json()["meta"]["fieldErrors"]
    assert await _stored(pool, name) == 0


async def test_deep_links_need_an_app_that_declares_their_scheme(
    api: httpx.AsyncClient, app: dict[str, str]
) -> None:
    scheme = f"t{uuid.uuid4().hex[:10]}"
    link = f"{scheme.upper()}://offers/42"
    refused = await api.post("/channels/push/inappcontent", json=inapp(link, "deep"))
    assert refused.status_code == 400
    assert scheme in refused.json()["meta"]["fieldErrors"]["payload.gcm.content.action.value"][0]

    declaring = await api.post("/apps", json={"name": "d", "deepLinkSchemes": [scheme]})
    assert declaring.status_code == 201, declaring.text
    assert declaring.json()["data"]["deepLinkSchemes"] == [scheme]
    published = await api.post("/channels/push/inappcontent", json=inapp(link, "deep"))
    assert published.status_code == 201, published.text
    content_id = published.json()["data"]["id"]

    # At send, every app named must declare the scheme: the content reaches its apps.
    other = await api.post("/channels/push/sends", json=seed_send(content_id, app["appKey"]))
    assert other.status_code == 400
    assert scheme in other.json()["meta"]["fieldErrors"]["channelQualifiers"][0]
    key = declaring.json()["data"]["appKey"]
    assert (
        await api.post("/channels/push/sends", json=seed_send(content_id, key))
    ).status_code == 202


@pytest.mark.parametrize("scheme", ["javascript", "data", "https", "my app", "1abc"])
async def test_an_app_cannot_declare_an_unsafe_or_malformed_scheme(
    scheme: str, api: httpx.AsyncClient
) -> None:
    answer = await api.post("/apps", json={"name": "x", "deepLinkSchemes": [scheme]})
    assert answer.status_code == 400
    assert "deepLinkSchemes.0" in answer.json()["meta"]["fieldErrors"]


async def test_an_app_declares_a_scheme_later_with_patch(
    api: httpx.AsyncClient, app: dict[str, str]
) -> None:
    scheme = f"t{uuid.uuid4().hex[:10]}"
    patched = await api.patch(f"/apps/{app['appKey']}", json={"deepLinkSchemes": [scheme]})
    assert patched.status_code == 200, patched.text
    assert patched.json()["data"]["deepLinkSchemes"] == [scheme]
    assert (await api.get(f"/apps/{app['appKey']}")).json()["data"]["deepLinkSchemes"] == [scheme]
    published = await api.post("/channels/push/inappcontent", json=inapp(f"{scheme}://x", "p"))
    assert published.status_code == 201, published.text
    send = seed_send(published.json()["data"]["id"], app["appKey"])
    assert (await api.post("/channels/push/sends", json=send)).status_code == 202

    refused = await api.patch(f"/apps/{app['appKey']}", json={"deepLinkSchemes": ["data"]})
    assert refused.status_code == 400
    unknown = await api.patch("/apps/no-such-app", json={"deepLinkSchemes": []})
    assert unknown.status_code == 404
