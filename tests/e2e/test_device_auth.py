"""The device API refuses every request it cannot tie to one app and one contact."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest


def _token(secret: str, **claims: object) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


@pytest.mark.parametrize(
    "case",
    [
        "no app key",
        "unknown app key",
        "no token",
        "bad signature",
        "expired",
        "no exp",
        "wrong algorithm",
    ],
)
async def test_sync_refuses_bad_credentials(
    device_api: httpx.AsyncClient, app: dict[str, str], case: str
) -> None:
    secret, key = app["appSecret"], app["appKey"]
    good_exp = int(time.time()) + 600
    headers = {
        "no app key": {"Authorization": f"Bearer {_token(secret, sub='1', exp=good_exp)}"},
        "unknown app key": {
            "X-App-Key": "nope",
            "Authorization": f"Bearer {_token(secret, sub='1', exp=good_exp)}",
        },
        "no token": {"X-App-Key": key},
        "bad signature": {
            "X-App-Key": key,
            "Authorization": f"Bearer {_token('other-secret', sub='1', exp=good_exp)}",
        },
        "expired": {
            "X-App-Key": key,
            "Authorization": f"Bearer {_token(secret, sub='1', exp=int(time.time()) - 5)}",
        },
        "no exp": {"X-App-Key": key, "Authorization": f"Bearer {_token(secret, sub='1')}"},
        "wrong algorithm": {
            "X-App-Key": key,
            "Authorization": "Bearer "
            + jwt.encode({"sub": "1", "exp": good_exp}, secret, algorithm="HS512"),
        },
    }[case]
    response = await device_api.post("/v1/sync", json={"platform": "gcm"}, headers=headers)
    assert response.status_code == 401, response.text


async def test_sync_rejects_an_unknown_platform(
    device_api: httpx.AsyncClient, app: dict[str, str]
) -> None:
    token = _token(app["appSecret"], sub="1", exp=int(time.time()) + 600)
    response = await device_api.post(
        "/v1/sync",
        json={"platform": "symbian"},
        headers={"X-App-Key": app["appKey"], "Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "platform"]
