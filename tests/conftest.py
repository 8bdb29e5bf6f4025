"""Fixtures for tests against the real stack that `make up` starts (see README)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import jwt
import pytest
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from shared.db import create_pool
from shared.settings import CommonSettings
from tests.cluster import any_redis, cluster_client  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parent.parent
PUBLISHER_URL = "http://127.0.0.1:8080"
SYNC_URL = "http://127.0.0.1:8081"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fault suite runs last: it stops Kafka, PostgreSQL and Redis, and nothing it
    leaves behind (a stale connection in a session fixture) should touch another test."""
    faults = [item for item in items if "/tests/faults/" in str(item.path)]
    items[:] = [item for item in items if item not in faults] + faults


@pytest.fixture(scope="session")
def settings() -> CommonSettings:
    return CommonSettings()


def cli(*args: str) -> str:
    """Run the `pigeonhole` command as an operator would; return its stdout."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "pigeonhole"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout


def create_token(*scopes: str) -> str:
    args = ["tokens", "create", "--name", f"tests-{uuid.uuid4().hex[:6]}"]
    for scope in scopes:
        args += ["--scope", scope]
    return cli(*args).strip().splitlines()[-1]


@pytest.fixture(scope="session")
def admin_token() -> str:
    return create_token("admin")


@pytest.fixture(scope="session")
async def pool(settings: CommonSettings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings.database_url, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def redis_client(settings: CommonSettings) -> AsyncIterator[aioredis.Redis]:
    # reconnects after a Redis restart (the fault suite restarts it)
    client = aioredis.from_url(
        settings.redis_url,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=5),
        retry_on_error=[redis.exceptions.ConnectionError],
    )
    yield client
    await client.aclose()


@pytest.fixture
async def api(admin_token: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {admin_token}"}
    async with httpx.AsyncClient(base_url=PUBLISHER_URL, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture
async def device_api() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=SYNC_URL, timeout=30) as client:
        yield client


def device_token(app_secret: str, contact_id: str, *, ttl: int = 600) -> str:
    """What the customer's backend does: an HS256 token for one contact."""
    claims = {"sub": contact_id, "exp": int(time.time()) + ttl}
    return jwt.encode(claims, app_secret, algorithm="HS256")


@pytest.fixture
async def app(api: httpx.AsyncClient) -> dict[str, str]:
    """A fresh app, so each test sees only its own messages."""
    response = await api.post("/apps", json={"name": f"test-{uuid.uuid4().hex[:6]}"})
    assert response.status_code == 201, response.text
    data: dict[str, str] = response.json()["data"]
    return data
