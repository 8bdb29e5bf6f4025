"""The phone home is answered in front of FastAPI (services/sync/fast_path.py): both
answers are the ones the full handler gives, with the same CORS headers and request
metrics, and every request it does not fully handle gets the full handler's answer. The
sync app runs in-process against the real PostgreSQL and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from services.sync.main import create_app
from shared.settings import SyncSettings
from tests.conftest import device_token

# FastAPI reads a "+json" body as JSON; the fast path takes only application/json, so
# this content type reaches the full handler with the same request
FULL_PATH = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture
async def sync() -> AsyncIterator[httpx.AsyncClient]:
    sync_app = create_app(SyncSettings())
    async with sync_app.router.lifespan_context(sync_app):
        transport = httpx.ASGITransport(app=sync_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sync") as client:
            yield client


def _device(app: dict[str, str], contact_id: str) -> dict[str, str]:
    token = device_token(app["appSecret"], contact_id)
    return {"X-App-Key": app["appKey"], "Authorization": f"Bearer {token}"}


def _answered() -> float:
    labels = {"service": "sync", "method": "POST", "route": "/v1/sync", "status": "2xx"}
    return REGISTRY.get_sample_value("pigeonhole_http_requests_total", labels) or 0.0


async def test_both_answers_are_the_full_handlers_with_its_headers_and_metrics(
    sync: httpx.AsyncClient, app: dict[str, str]
) -> None:
    headers = _device(app, "fast-path-1")
    before = _answered()
    fast = await sync.post("/v1/sync", json={"platform": "web"}, headers=headers)
    full = await sync.post(
        "/v1/sync", content=b'{"platform":"web"}', headers={**headers, **FULL_PATH}
    )
    assert fast.status_code == full.status_code == 200
    assert fast.json() == full.json() and fast.json()["changed"] is True
    cursor = fast.json()["cursor"]
    origin = {**headers, "Origin": "https://shop.example"}
    fast = await sync.post("/v1/sync", json={"platform": "web", "cursor": cursor}, headers=origin)
    full = await sync.post(
        "/v1/sync",
        content=b'{"platform":"web","cursor":"%s"}' % cursor.encode(),
        headers={**origin, **FULL_PATH},
    )
    assert fast.json() == full.json() == {**full.json(), "changed": False}
    for answer in (fast, full):
        assert answer.headers["access-control-allow-origin"] == "*"
        assert answer.headers["vary"] == "Origin"
        assert answer.headers["content-type"] == "application/json"
    assert _answered() == before + 4


@pytest.mark.parametrize(
    ("body", "extra", "status"),
    [
        ({"platform": "gcm", "cursor": "gcm.1", "more": 1}, {}, 422),  # an unknown field
        ({"platform": "windows"}, {}, 422),
        ({"platform": "gcm", "cursor": "x" * 65}, {}, 422),
        ({"platform": "gcm", "cursor": 5}, {}, 422),
        ({"cursor": "gcm.1"}, {}, 422),
        ({"platform": "gcm", "cursor": "gcm.\u0000"}, {}, 400),  # InputGuard's NUL check
        ({"platform": "gcm"}, {"Authorization": "Bearer not-a-token"}, 401),
        ({"platform": "gcm"}, {"X-App-Key": "no-such-app"}, 401),
        ({"platform": "gcm"}, {"Content-Type": "text/plain"}, 422),
    ],
)
async def test_requests_the_fast_path_does_not_handle_get_the_full_handlers_answer(
    sync: httpx.AsyncClient, app: dict[str, str], body: Any, extra: dict[str, str], status: int
) -> None:
    headers = {**_device(app, "fast-path-2"), **extra}
    response = await sync.post("/v1/sync", json=body, headers=headers)
    assert response.status_code == status, response.text
    full = await sync.post("/v1/sync?full=1", json=body, headers=headers)  # never fast-pathed
    assert (response.status_code, response.json()) == (full.status_code, full.json())
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


async def test_a_body_over_the_limit_is_the_full_handlers_413(
    sync: httpx.AsyncClient, app: dict[str, str]
) -> None:
    body = b'{"platform":"gcm","cursor":"' + b"x" * (SyncSettings().max_body_bytes + 1) + b'"}'
    response = await sync.post(
        "/v1/sync", content=body, headers={**_device(app, "fast-path-3"), **FULL_PATH}
    )
    assert response.status_code == 413
    response = await sync.post("/v1/sync", content=body, headers=_device(app, "fast-path-3"))
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]
