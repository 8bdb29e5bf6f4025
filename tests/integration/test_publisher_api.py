"""The publisher's API against the running service and the real PostgreSQL."""

from __future__ import annotations

import copy
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import PUBLISHER_URL, create_token
from tests.seed_payloads import BOTTOM_BANNER, SEED_EXAMPLES


@pytest.mark.parametrize("example", list(SEED_EXAMPLES))
async def test_seed_payloads_publish_and_round_trip(api: httpx.AsyncClient, example: str) -> None:
    body = SEED_EXAMPLES[example]
    response = await api.post("/channels/push/inappcontent", json=body)
    assert response.status_code == 201, response.text
    envelope = response.json()
    assert envelope["meta"] == {
        "attributes": {},
        "generalErrors": [],
        "fieldErrors": {},
        "links": [],
        "nextPageUrl": None,
    }
    content_id = envelope["data"]["id"]
    assert len(content_id) == 8 and content_id.replace("-", "").replace("_", "").isalnum()
    assert envelope["data"]["location"].endswith(f"/channels/push/inappcontent/{content_id}")

    stored = (await api.get(f"/channels/push/inappcontent/{content_id}")).json()["data"]
    assert stored["payload"] == body["payload"]
    assert stored["personalizationDefaults"] == body["personalizationDefaults"]
    assert stored["personalizationFormulas"] == body["personalizationFormulas"]


async def _content_count(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM contents")
    return count


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b["payload"]["gcm"].__setitem__("maxViews", "three"), "payload.gcm.maxViews"),
        (
            lambda b: b["personalizationFormulas"].__setitem__("cust_timestamp", "format(Dated,"),
            "personalizationFormulas.cust_timestamp",
        ),
        (
            lambda b: b["payload"]["apns"]["content"].__setitem__("title", "Hello %%First_Name"),
            "payload.apns.content.title",
        ),
        (lambda b: b.__setitem__("payloads", {}), "payloads"),
        (lambda b: b.pop("payload"), "payload"),
    ],
)
async def test_bad_content_is_a_400_naming_the_field_and_writes_nothing(
    api: httpx.AsyncClient, pool: asyncpg.Pool, mutate: Any, field: str
) -> None:
    body = copy.deepcopy(BOTTOM_BANNER)
    mutate(body)
    before = await _content_count(pool)
    response = await api.post("/channels/push/inappcontent", json=body)
    assert response.status_code == 400, response.text
    assert field in response.json()["meta"]["fieldErrors"], response.json()
    assert await _content_count(pool) == before


async def test_a_body_that_is_not_json_is_a_400(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/channels/push/inappcontent",
        content=b"{nope",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["meta"]["generalErrors"]


PUBLIC = {("GET", "/media/{media_id}")}


async def _protected_endpoints() -> list[tuple[str, str]]:
    async with httpx.AsyncClient(base_url=PUBLISHER_URL) as client:
        spec = (await client.get("/openapi.json")).json()
    endpoints = [
        (method.upper(), path.replace("{", "").replace("}", ""))
        for path, operations in spec["paths"].items()
        for method in operations
        if (method.upper(), path) not in PUBLIC
    ]
    assert len(endpoints) >= 10
    return endpoints


async def test_every_endpoint_refuses_missing_wrong_or_under_scoped_tokens() -> None:
    cases = [
        ({}, 401),
        ({"Authorization": "Bearer ph_00000000_not-a-real-token"}, 401),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
    ]
    # Two tokens with disjoint narrow scopes: every endpoint needs one scope, so at least
    # one of the two is refused with 403, and neither may pass unless it has that scope.
    narrow = {scope: create_token(scope) for scope in ("stats", "contacts")}
    for method, path in await _protected_endpoints():
        for headers, status in cases:
            async with httpx.AsyncClient(base_url=PUBLISHER_URL, headers=headers) as client:
                response = await client.request(method, path, json={})
            assert response.status_code == status, (method, path, headers, response.text)
        refused = []
        for scope, token in narrow.items():
            async with httpx.AsyncClient(
                base_url=PUBLISHER_URL, headers={"Authorization": f"Bearer {token}"}
            ) as client:
                response = await client.request(method, path, json={})
            if response.status_code == 403:
                assert f"'{scope}'" not in response.text
                refused.append(scope)
        assert refused, (method, path, "no narrow token was refused")


async def test_a_token_without_the_scope_is_forbidden() -> None:
    token = create_token("contacts")
    async with httpx.AsyncClient(
        base_url=PUBLISHER_URL, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        denied = await client.post("/channels/push/inappcontent", json=BOTTOM_BANNER)
        assert denied.status_code == 403
        assert "content" in denied.json()["meta"]["generalErrors"][0]
        allowed = await client.put("/contacts/scoped-1", json={"attributes": {"a": 1}})
        assert allowed.status_code in (200, 201)


async def test_send_naming_unknown_content_or_app_is_refused_and_creates_no_job(
    api: httpx.AsyncClient, app: dict[str, str], pool: asyncpg.Pool
) -> None:
    published = await api.post("/channels/push/inappcontent", json=BOTTOM_BANNER)
    content_id = published.json()["data"]["id"]
    jobs_before = await pool.fetchval("SELECT count(*) FROM send_jobs")
    cases = [
        ({"inAppContentId": "nope0000"}, [app["appKey"]], "content.inAppMessage.inAppContentId"),
        ({"inAppContentId": content_id}, ["no-such-app"], "channelQualifiers"),
        (
            {"inAppContentId": content_id, "expirationDate": "soon"},
            [app["appKey"]],
            "content.inAppMessage.expirationDate",
        ),
    ]
    for message, apps, field in cases:
        body = {
            "channelQualifiers": apps,
            "content": {"inAppMessage": message},
            "contacts": [{"contactId": 1}],
        }
        response = await api.post("/channels/push/sends", json=body)
        assert response.status_code == 400, response.text
        assert field in response.json()["meta"]["fieldErrors"], response.json()
    assert await pool.fetchval("SELECT count(*) FROM send_jobs") == jobs_before


async def test_openapi_describes_every_endpoint_and_body() -> None:
    async with httpx.AsyncClient(base_url=PUBLISHER_URL) as client:
        spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in [
        "/channels/push/inappcontent", "/channels/push/inappcontent/{content_id}",
        "/channels/push/sends", "/channels/push/sends/usingAppFrequency",
        "/channels/push/sendjobs", "/channels/push/sendjobs/{job_id}", "/campaigns",
        "/campaigns/{campaign_id}", "/appinbox/messages", "/appinbox/messages/{content_id}/test",
        "/media", "/apps", "/contacts/{contact_id}", "/contacts/batch", "/contact-sources",
        "/contact-sources/{source_id}", "/tag-caps/{tag}", "/stats",
    ]:  # fmt: skip
        assert path in paths, path
    bodiless = {"/campaigns/{campaign_id}/{action}", "/channels/push/sendjobs/{job_id}/{action}",
                "/campaigns/{campaign_id}/start"}  # fmt: skip
    for path, operations in paths.items():
        for method, operation in operations.items():
            if method in ("post", "put") and path not in bodiless:
                content = operation.get("requestBody", {}).get("content", {})
                assert any("schema" in c for c in content.values()), (method, path)
