"""Helpers for end-to-end tests: publish, send and wait like an operator and a device."""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import device_token
from tests.seed_payloads import BOTTOM_BANNER


class Operator:
    def __init__(self, api: httpx.AsyncClient, pool: asyncpg.Pool, app: dict[str, str]) -> None:
        self.api, self.pool, self.app = api, pool, app

    async def contact(self, name: str = "c", **attributes: Any) -> str:
        contact_id = f"{name}-{uuid.uuid4().hex[:10]}"
        response = await self.api.put(f"/contacts/{contact_id}", json={"attributes": attributes})
        assert response.status_code == 201, response.text
        return contact_id

    async def inapp(self, **overrides: Any) -> str:
        body = {**copy.deepcopy(BOTTOM_BANNER), **overrides}
        response = await self.api.post("/channels/push/inappcontent", json=body)
        assert response.status_code == 201, response.text
        content_id: str = response.json()["data"]["id"]
        return content_id

    async def inbox_message(self, title: str, **overrides: Any) -> str:
        body = {"name": "n", "title": title, "text": "Hi %%first_name%%", **overrides}
        response = await self.api.post("/appinbox/messages", json=body)
        assert response.status_code == 201, response.text
        content_id: str = response.json()["data"]["id"]
        return content_id

    async def send(self, message: dict[str, Any], contacts: list[str], **extra: Any) -> int:
        body = {
            "channelQualifiers": [self.app["appKey"]],
            "content": message,
            "contacts": [{"contactId": c} for c in contacts],
            **extra,
        }
        response = await self.api.post("/channels/push/sends", json=body)
        assert response.status_code == 202, response.text
        job_id: int = response.json()["data"]["id"]
        return job_id

    async def delivered(self, job_id: int, count: int = 1, within: float = 30) -> None:
        """Wait until the job's entries are filed."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            filed = await self.pool.fetchval(
                "SELECT count(*) FROM inbox_entries WHERE send_job_id = $1", job_id
            )
            if filed >= count:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"job {job_id}: fewer than {count} entries filed in {within}s")

    def device(self, contact_id: str) -> dict[str, str]:
        token = device_token(self.app["appSecret"], contact_id)
        return {"X-App-Key": self.app["appKey"], "Authorization": f"Bearer {token}"}


@pytest.fixture
def operator(api: httpx.AsyncClient, pool: asyncpg.Pool, app: dict[str, str]) -> Operator:
    return Operator(api, pool, app)
