"""Key hygiene on the real stack: API tokens listed (never a secret) and revoked (refused at
once), an app secret rotated with an overlap (both verify, then only the new one, device
tokens and stream tickets alike), and rate limits answering 429 with Retry-After."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from services.sync.auth import RELOAD_SECONDS
from tests.conftest import PUBLISHER_URL, cli, create_token, device_token

pytestmark = pytest.mark.integration

LISTED = "/channels/push/inappcontent"  # a call of scope "content"


def _token_id(token: str) -> str:
    return token.split("_")[1]  # ph_<id>_<secret>


async def _as(token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=PUBLISHER_URL, headers=headers, timeout=30) as client:
        return await client.request(method, path, **kwargs)


async def test_tokens_are_listed_without_secrets_and_a_revoked_one_is_refused_at_once(
    api: httpx.AsyncClient,
) -> None:
    token = create_token("content")
    assert (await _as(token, "GET", LISTED)).status_code == 200
    listed = await api.get("/api-tokens")
    assert listed.status_code == 200, listed.text
    assert token.split("_", 2)[2] not in listed.text  # no secret, whatever the field
    mine = next(t for t in listed.json()["data"] if t["id"] == _token_id(token))
    assert mine["scopes"] == ["content"] and mine["revokedAt"] is None
    assert mine["lastUsedAt"] is not None and mine["createdAt"] is not None
    assert set(mine) == {"id", "name", "scopes", "createdAt", "lastUsedAt", "revokedAt",
                         "requestsPerMinute"}  # fmt: skip

    revoked = await api.delete(f"/api-tokens/{_token_id(token)}")
    assert revoked.status_code == 200 and revoked.json()["data"]["revokedAt"], revoked.text
    refused = await _as(token, "GET", LISTED)  # the very next request
    assert refused.status_code == 401 and "revoked" in refused.text
    again = await api.delete(f"/api-tokens/{_token_id(token)}")
    assert again.json()["data"]["revokedAt"] == revoked.json()["data"]["revokedAt"]
    assert (await api.delete("/api-tokens/nosuchid")).status_code == 404
    # only an admin token lists or revokes tokens
    apps_only = create_token("apps")
    assert (await _as(apps_only, "GET", "/api-tokens")).status_code == 403
    assert (
        await _as(apps_only, "DELETE", f"/api-tokens/{_token_id(apps_only)}")
    ).status_code == 403


async def test_the_cli_lists_and_revokes_tokens() -> None:
    token = create_token("content")
    assert (await _as(token, "GET", LISTED)).status_code == 200
    listing = cli("tokens", "list")
    line = next(line for line in listing.splitlines() if line.startswith(_token_id(token)))
    assert "scopes=content" in line and "active" in line
    assert token.split("_", 2)[2] not in listing
    assert "revoked" in cli("tokens", "revoke", _token_id(token))
    assert (await _as(token, "GET", LISTED)).status_code == 401
    line = next(
        line for line in cli("tokens", "list").splitlines() if line.startswith(_token_id(token))
    )
    assert "revoked 20" in line


async def _ticket(device_api: httpx.AsyncClient, headers: dict[str, str]) -> str:
    answer = await device_api.post("/v1/stream/ticket", headers=headers)
    assert answer.status_code == 200, answer.text
    ticket: str = answer.json()["ticket"]
    return ticket


async def _stream_opens(device_api: httpx.AsyncClient, ticket: str) -> int:
    """The status of GET /v1/stream?ticket= (reading only the head of an opened stream)."""
    async with device_api.stream("GET", "/v1/stream", params={"ticket": ticket}) as answer:
        return answer.status_code


def _device(app: dict[str, str], secret: str, contact: str) -> dict[str, str]:
    return {"X-App-Key": app["appKey"], "Authorization": f"Bearer {device_token(secret, contact)}"}


async def _phone_home(device_api: httpx.AsyncClient, headers: dict[str, str]) -> int:
    answer = await device_api.post("/v1/sync", json={"platform": "gcm"}, headers=headers)
    return answer.status_code


async def test_both_secrets_verify_during_a_rotation_and_only_the_new_one_after(
    api: httpx.AsyncClient, app: dict[str, str], device_api: httpx.AsyncClient
) -> None:
    old = _device(app, app["appSecret"], "rot-1")
    ticket_before = await _ticket(device_api, old)  # signed with the old secret
    second_ticket_before = await _ticket(device_api, old)
    rotated = await api.post(f"/apps/{app['appKey']}/secret/rotate", json={"overlapSeconds": 6})
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["data"]["appSecret"]
    assert new_secret != app["appSecret"]
    deadline = datetime.fromisoformat(rotated.json()["data"]["previousSecretExpiresAt"])
    new = _device(app, new_secret, "rot-1")

    await asyncio.sleep(RELOAD_SECONDS + 0.2)  # sync read the app (tickets) just before
    for headers in (old, new):  # the fast path and a FastAPI route, each secret
        assert await _phone_home(device_api, headers) == 200
        assert (await device_api.get("/v1/inbox", headers=headers)).status_code == 200
    assert await _stream_opens(device_api, ticket_before) == 200
    assert await _stream_opens(device_api, await _ticket(device_api, new)) == 200

    await asyncio.sleep(max(0.0, deadline.timestamp() - time.time()) + 0.5)
    assert await _phone_home(device_api, old) == 401
    assert (await device_api.get("/v1/inbox", headers=old)).status_code == 401
    assert await _stream_opens(device_api, second_ticket_before) == 401
    assert await _phone_home(device_api, new) == 200
    assert await _stream_opens(device_api, await _ticket(device_api, new)) == 200


async def test_a_retired_secret_stops_verifying(
    api: httpx.AsyncClient, app: dict[str, str], device_api: httpx.AsyncClient
) -> None:
    key = app["appKey"]
    rotated = await api.post(f"/apps/{key}/secret/rotate", json={})  # a day's overlap
    assert rotated.status_code == 200, rotated.text
    retired = await api.delete(f"/apps/{key}/secret/previous")
    assert retired.json()["data"] == {"appKey": key, "retired": True}
    assert (await api.delete(f"/apps/{key}/secret/previous")).json()["data"]["retired"] is False
    # sync never read this app before the retirement: every process sees it retired
    assert await _phone_home(device_api, _device(app, app["appSecret"], "ret-1")) == 401
    new = rotated.json()["data"]["appSecret"]
    assert await _phone_home(device_api, _device(app, new, "ret-1")) == 200
    for bad in ({"overlapSeconds": -1}, {"overlapSeconds": 10**9}, {"other": 1}):
        assert (await api.post(f"/apps/{key}/secret/rotate", json=bad)).status_code == 400
    assert (await api.post("/apps/nope/secret/rotate", json={})).status_code == 404
    assert (await api.delete("/apps/nope/secret/previous")).status_code == 404


async def test_a_token_over_its_rate_limit_gets_429_with_retry_after() -> None:
    name = f"tests-limited-{uuid.uuid4().hex[:6]}"
    out = cli(
        "tokens", "create", "--name", name, "--scope", "content", "--requests-per-minute", "3"
    )
    token = out.strip().splitlines()[-1]
    answers = [await _as(token, "GET", LISTED) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    limited = answers[-1]
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert "at most 3 a minute" in limited.json()["meta"]["generalErrors"][0]
    other = create_token("content")  # counted apart
    assert (await _as(other, "GET", LISTED)).status_code == 200


async def test_a_device_over_its_apps_rate_limit_gets_429_with_retry_after(
    api: httpx.AsyncClient, app: dict[str, str], device_api: httpx.AsyncClient
) -> None:
    key = app["appKey"]
    put = await api.put(f"/apps/{key}/rate-limit", json={"deviceRequestsPerMinute": 2})
    assert put.json()["data"] == {"appKey": key, "deviceRequestsPerMinute": 2}, put.text
    for bad in ({"deviceRequestsPerMinute": 0}, {"deviceRequestsPerMinute": "x"}, {}):
        assert (await api.put(f"/apps/{key}/rate-limit", json=bad)).status_code == 400
    device = _device(app, app["appSecret"], "limited-1")  # sync reads the app after the PUT
    assert [await _phone_home(device_api, device) for _ in range(2)] == [200, 200]
    limited = await device_api.post("/v1/sync", json={"platform": "gcm"}, headers=device)
    assert limited.status_code == 429, limited.text
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert "at most 2 a minute" in limited.json()["detail"]
    assert (await device_api.get("/v1/inbox", headers=device)).status_code == 429
    other = _device(app, app["appSecret"], "limited-2")  # another contact: its own count
    assert await _phone_home(device_api, other) == 200
