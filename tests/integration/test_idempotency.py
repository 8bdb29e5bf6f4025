"""Idempotency-Key on every way to send: a retry answers the same job with the same
status; the same key with another body is a 409 naming the job, and changes nothing."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from tests.seed_payloads import BOTTOM_BANNER, seed_send


@dataclass
class Setup:
    inapp_id: str
    inbox_id: str
    app_key: str
    source_id: int


@pytest.fixture
async def setup(api: httpx.AsyncClient, app: dict[str, str]) -> Setup:
    inapp = await api.post("/channels/push/inappcontent", json=BOTTOM_BANNER)
    inbox = await api.post(
        "/appinbox/messages", json={"name": "n", "title": "Hello", "text": "A message"}
    )
    contact = f"idem-{uuid.uuid4().hex[:8]}"
    assert (await api.put(f"/contacts/{contact}", json={})).status_code in (200, 201)
    source = await api.post("/contact-sources", json={"name": "t", "contactIds": [contact]})
    assert source.status_code == 201, source.text
    return Setup(
        inapp.json()["data"]["id"], inbox.json()["data"]["id"], app["appKey"],
        source.json()["data"]["id"],
    )  # fmt: skip


def _sends(s: Setup, app_key: str) -> dict[str, tuple[str, dict[str, Any], int]]:
    """Every way to send: path, body, the status it answers."""
    test = {"contactIds": ["13507"], "appKeys": [app_key]}
    content = {"inAppMessage": {"inAppContentId": s.inapp_id}}
    return {
        "sends": ("/channels/push/sends", seed_send(s.inapp_id, app_key), 202),
        "sends/usingAppFrequency": (
            "/channels/push/sends/usingAppFrequency", seed_send(s.inapp_id, app_key), 202,
        ),
        "sendjobs": (
            "/channels/push/sendjobs",
            {"contactSourceId": s.source_id, "appKeys": [app_key], "content": content},
            202,
        ),
        "campaigns": (
            "/campaigns",
            {"name": "c", "content": content, "include": [s.source_id], "appKeys": [app_key]},
            201,
        ),
        "test inbox": (f"/appinbox/messages/{s.inbox_id}/test", test, 202),
        "test inapp": (f"/channels/push/inappcontent/{s.inapp_id}/test", test, 202),
    }  # fmt: skip


WAYS = ["sends", "sends/usingAppFrequency", "sendjobs", "campaigns", "test inbox", "test inapp"]


async def _jobs_with_key(pool: asyncpg.Pool, key: str) -> list[int]:
    rows = await pool.fetch("SELECT id FROM send_jobs WHERE request_id = $1", f"http:{key}")
    return [r["id"] for r in rows]


@pytest.mark.parametrize("way", WAYS)
async def test_a_retry_answers_the_same_job_and_another_body_is_409(
    way: str, setup: Setup, api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    path, body, status = _sends(setup, setup.app_key)[way]
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    first = await api.post(path, json=body, headers=headers)
    again = await api.post(path, json=body, headers=headers)
    assert first.status_code == again.status_code == status, first.text
    job_id = first.json()["data"]["id"]
    assert again.json()["data"]["id"] == job_id

    other = {**body, "personalizationDefaults": {"First_Name": "Someone else"}}
    conflict = await api.post(path, json=other, headers=headers)
    assert conflict.status_code == 409, conflict.text
    message = conflict.json()["meta"]["fieldErrors"]["Idempotency-Key"][0]
    assert str(job_id) in message
    assert await _jobs_with_key(pool, headers["Idempotency-Key"]) == [job_id]


async def test_a_key_used_on_another_way_to_send_is_409(
    setup: Setup, api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    ways = _sends(setup, setup.app_key)
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    path, body, _ = ways["sends"]
    first = await api.post(path, json=body, headers=headers)
    path, body, _ = ways["sends/usingAppFrequency"]
    other = await api.post(path, json=body, headers=headers)
    assert other.status_code == 409
    assert await _jobs_with_key(pool, headers["Idempotency-Key"]) == [first.json()["data"]["id"]]


async def test_the_body_is_compared_as_json_not_as_text(
    setup: Setup, api: httpx.AsyncClient
) -> None:
    """Key order, spacing and a contact id given as number or text are the same request."""
    body = seed_send(setup.inapp_id, setup.app_key, contact_id=13507)
    reordered = dict(reversed(list(body.items())))
    reordered["contacts"] = [{**c, "contactId": "13507"} for c in body["contacts"]]
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    first = await api.post("/channels/push/sends", json=body, headers=headers)
    again = await api.post("/channels/push/sends", json=reordered, headers=headers)
    assert again.status_code == 202, again.text
    assert again.json()["data"]["id"] == first.json()["data"]["id"]


async def test_concurrent_retries_make_one_job(
    setup: Setup, api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    path, body, _ = _sends(setup, setup.app_key)["campaigns"]
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    answers = await asyncio.gather(*(api.post(path, json=body, headers=headers) for _ in range(8)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["data"]["id"] for a in answers}) == 1
    assert len(await _jobs_with_key(pool, headers["Idempotency-Key"])) == 1


@pytest.mark.parametrize("key", ["", "k" * 201])
async def test_a_bad_key_is_refused_naming_the_header(
    key: str, setup: Setup, api: httpx.AsyncClient
) -> None:
    answer = await api.post(
        "/channels/push/sends",
        json=seed_send(setup.inapp_id, setup.app_key),
        headers={"Idempotency-Key": key},
    )
    assert answer.status_code == 400
    assert "Idempotency-Key" in answer.json()["meta"]["fieldErrors"]
