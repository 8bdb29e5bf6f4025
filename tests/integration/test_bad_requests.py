"""Every bad request is a 4xx that names the problem and changes nothing; while a
dependency is down the answer is 503 with Retry-After. Each case here was once a 500 (or
would be without its check): NUL characters, lone surrogates, integers beyond 64 bits,
non-finite numbers, ids beyond bigint, bodies of the wrong shape or size."""

from __future__ import annotations

import copy
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from services.publisher import limits
from services.publisher import main as publisher_main
from services.sync import main as sync_main
from services.sync.auth import AppCache
from shared.db import create_pool
from shared.redis_keys import InboxVersions
from shared.settings import CommonSettings, PublisherSettings, SyncSettings
from tests.conftest import device_token
from tests.seed_payloads import BOTTOM_BANNER

pytestmark = pytest.mark.integration

BEYOND_BIGINT = 2**63
BEYOND_64_BITS = 2**70


def fields(response: httpx.Response) -> dict[str, list[str]]:
    """The envelope's fieldErrors of a refused management call."""
    assert 400 <= response.status_code < 500, response.text
    found: dict[str, list[str]] = response.json()["meta"]["fieldErrors"]
    return found


def raw_json(text: str) -> dict[str, Any]:
    """A JSON body written by hand (json.dumps cannot write a lone surrogate)."""
    return {"content": text.encode(), "headers": {"content-type": "application/json"}}


def contact_id() -> str:
    return f"bad-{uuid.uuid4().hex[:10]}"


# -- NUL characters and lone surrogates, in the query, the path, keys and values ----------


@pytest.mark.parametrize(
    "url",
    [
        "/channels/push/inappcontent?tag=%00",
        "/appinbox/messages?after=a%00b",
        "/appinbox/messages?tag=%00",
        "/stats?contentId=%00",
    ],
)
async def test_nul_in_a_query_parameter_is_refused_naming_it(
    api: httpx.AsyncClient, url: str
) -> None:
    response = await api.get(url)
    assert response.status_code == 400
    name = url.split("?")[1].split("=")[0]
    assert "NUL" in fields(response)[name][0]


async def test_nul_in_a_contact_id_creates_no_contact(api: httpx.AsyncClient) -> None:
    response = await api.put("/contacts/a%00b", json={"attributes": {"x": 1}})
    assert response.status_code == 400
    assert "NUL" in fields(response)["path"][0]


async def test_nul_in_a_subscription_key_is_refused_and_changes_nothing(
    api: httpx.AsyncClient,
) -> None:
    contact = contact_id()
    response = await api.put(f"/contacts/{contact}", json={"subscriptions": {"off\x00ers": True}})
    assert response.status_code == 400
    assert list(fields(response)) == ["subscriptions.off\x00ers"]
    assert (await api.get(f"/contacts/{contact}")).status_code == 404


async def test_a_lone_surrogate_in_an_attribute_is_refused(api: httpx.AsyncClient) -> None:
    contact = contact_id()
    body = '{"attributes": {"city": ["Paris", "\\ud800"]}}'
    response = await api.put(f"/contacts/{contact}", **raw_json(body))
    assert response.status_code == 400
    assert "attributes.city.1" in fields(response)
    assert (await api.get(f"/contacts/{contact}")).status_code == 404


async def test_nul_in_an_imported_line_imports_nothing(api: httpx.AsyncClient) -> None:
    good, bad = contact_id(), contact_id()
    body = f'{{"contactId": "{good}"}}\n{{"contactId": "{bad}\\u0000"}}\n'
    response = await api.post(
        "/contacts/batch", content=body, headers={"content-type": "application/x-ndjson"}
    )
    assert response.status_code == 400
    assert any(name.startswith("line 2") for name in fields(response))
    assert (await api.get(f"/contacts/{good}")).status_code == 404


# -- numbers: beyond bigint, beyond 64 bits, not finite -----------------------------------


@pytest.mark.parametrize(
    ("url", "name"),
    [
        (f"/channels/push/sendjobs/{BEYOND_BIGINT}", "job_id"),
        (f"/campaigns/{BEYOND_BIGINT}", "campaign_id"),
        (f"/contact-sources/{BEYOND_BIGINT}", "source_id"),
        (f"/stats?sendJobId={BEYOND_BIGINT}", "sendJobId"),
        (f"/stats?campaignId={BEYOND_64_BITS}", "campaignId"),
    ],
)
async def test_an_id_beyond_bigint_is_refused_naming_it(
    api: httpx.AsyncClient, url: str, name: str
) -> None:
    response = await api.get(url)
    assert response.status_code == 400
    assert name in fields(response)


async def test_a_contact_source_id_beyond_bigint_is_refused(api: httpx.AsyncClient) -> None:
    body = {
        "contactSourceId": BEYOND_BIGINT,
        "appKeys": ["k"],
        "content": {"inAppMessage": {"inAppContentId": "x"}},
    }
    response = await api.post("/channels/push/sendjobs", json=body)
    assert "contactSourceId" in fields(response)


async def test_an_integer_beyond_64_bits_in_personalization_defaults_publishes_nothing(
    api: httpx.AsyncClient,
) -> None:
    name = f"huge-{uuid.uuid4().hex[:8]}"
    body = copy.deepcopy(BOTTOM_BANNER)
    body["name"] = name
    body["personalizationDefaults"]["Points"] = BEYOND_64_BITS
    response = await api.post("/channels/push/inappcontent", json=body)
    assert response.status_code == 400
    assert "64 bits" in fields(response)["personalizationDefaults.Points"][0]


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
async def test_a_number_that_is_not_finite_is_refused(api: httpx.AsyncClient, number: str) -> None:
    contact = contact_id()
    body = f'{{"attributes": {{"score": {number}}}}}'
    response = await api.put(f"/contacts/{contact}", **raw_json(body))
    assert response.status_code == 400
    assert "finite" in fields(response)["attributes.score"][0]


# -- sizes ---------------------------------------------------------------------------------


async def test_a_body_over_the_limit_is_413_naming_the_limit(api: httpx.AsyncClient) -> None:
    body = {"name": "x" * (PublisherSettings().max_body_bytes + 1)}
    response = await api.post("/apps", json=body)
    assert response.status_code == 413
    assert "1 MiB" in response.json()["meta"]["generalErrors"][0]


async def test_limits_on_personalization_attributes_and_recipients(
    api: httpx.AsyncClient,
) -> None:
    too_many_keys = {f"k{i}": "v" for i in range(limits.MAX_KEYS + 1)}
    send = {
        "channelQualifiers": ["k"],
        "content": {"inAppMessage": {"inAppContentId": "x"}},
        "personalizationDefaults": too_many_keys,
        "contacts": [{"contactId": "1"}],
    }
    response = await api.post("/channels/push/sends", json=send)
    assert "at most 100 keys" in fields(response)["personalizationDefaults"][0]

    send["personalizationDefaults"] = {}
    send["contacts"] = [{"contactId": str(i)} for i in range(limits.MAX_RECIPIENTS + 1)]
    response = await api.post("/channels/push/sends", json=send)
    assert "contacts" in fields(response)

    deep: dict[str, Any] = {}
    node = deep
    for _ in range(limits.MAX_ATTRIBUTES_DEPTH + 1):
        node["a"] = {}
        node = node["a"]
    response = await api.put(f"/contacts/{contact_id()}", json={"attributes": deep})
    assert "levels deep" in fields(response)["attributes"][0]


# -- the device API ------------------------------------------------------------------------


@pytest.fixture
def device(app: dict[str, str]) -> dict[str, str]:
    token = device_token(app["appSecret"], contact_id())
    return {"X-App-Key": app["appKey"], "Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "body", [{"platform": {}}, {"platform": {}, "cursor": "gcm.1"}, {"platform": ["gcm"]}]
)
async def test_a_phone_home_with_a_platform_of_the_wrong_type_is_refused(
    device_api: httpx.AsyncClient, device: dict[str, str], body: dict[str, Any]
) -> None:
    response = await device_api.post("/v1/sync", json=body, headers=device)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "platform"]


async def test_a_device_naming_an_inbox_id_beyond_bigint_is_refused(
    device_api: httpx.AsyncClient, device: dict[str, str]
) -> None:
    for method, suffix in (("DELETE", ""), ("POST", "/read")):
        url = f"/v1/inbox/{BEYOND_BIGINT}{suffix}"
        response = await device_api.request(method, url, headers=device)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["path", "message_id"]


async def test_nul_in_a_device_body_is_refused_naming_the_field(
    device_api: httpx.AsyncClient, device: dict[str, str]
) -> None:
    body = {"events": [{"eventId": "e\x00vent-1", "messageId": "1", "type": "view", "at": "x"}]}
    response = await device_api.post("/v1/events", json=body, headers=device)
    assert response.status_code == 400
    assert response.json()["detail"][0]["loc"] == ["body", "events", "0", "eventId"]


# -- a dependency down: 503 with Retry-After, in both services, from the token check on ----


def closed_port() -> int:
    """A local port nothing listens on: connecting there is what a stopped server gives."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def down_dsn() -> str:
    return f"postgresql://pigeonhole:pigeonhole@127.0.0.1:{closed_port()}/pigeonhole"


@pytest.fixture
async def publisher_without_postgres(down_dsn: str) -> AsyncIterator[httpx.AsyncClient]:
    """The publisher's app in process, its pool pointing at a PostgreSQL that is down."""
    app = publisher_main.create_app(PublisherSettings(database_url=down_dsn))
    app.state.pool = await create_pool(down_dsn, min_size=0)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://publisher") as client:
        yield client
    await app.state.pool.close()


async def test_publisher_answers_503_while_postgres_is_down(
    publisher_without_postgres: httpx.AsyncClient, admin_token: str
) -> None:
    headers = {"Authorization": f"Bearer {admin_token}"}
    for call in (
        publisher_without_postgres.get("/apps/some-app", headers=headers),
        publisher_without_postgres.put(f"/contacts/{contact_id()}", json={}, headers=headers),
    ):
        response = await call
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert "PostgreSQL" in response.json()["meta"]["generalErrors"][0]


async def _sync_app(pool_dsn: str, redis_url: str) -> tuple[Any, httpx.AsyncClient]:
    app = sync_main.create_app(SyncSettings(database_url=pool_dsn, redis_url=redis_url))
    app.state.pool = await create_pool(pool_dsn, min_size=0)
    app.state.redis = aioredis.from_url(redis_url)
    app.state.versions = InboxVersions(app.state.redis)
    app.state.apps = AppCache(app.state.pool)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sync")
    return app, client


@pytest.mark.parametrize("down", ["postgres", "redis"])
async def test_sync_answers_503_while_postgres_or_redis_is_down(
    down: str, down_dsn: str, settings: CommonSettings, device: dict[str, str]
) -> None:
    dsn = down_dsn if down == "postgres" else settings.database_url
    redis_url = f"redis://127.0.0.1:{closed_port()}/0" if down == "redis" else settings.redis_url
    app, client = await _sync_app(dsn, redis_url)
    try:
        for body in ({"platform": "gcm"}, {"platform": "gcm", "cursor": "gcm.1"}):
            response = await client.post("/v1/sync", json=body, headers=device)
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "5"
            assert {"postgres": "PostgreSQL", "redis": "Redis"}[down] in response.json()["detail"]
    finally:
        await client.aclose()
        await app.state.redis.aclose()
        await app.state.pool.close()
