"""A/B splits with a holdout on the real stack: shares, determinism, statistics."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx

from shared.ab_split import assign
from shared.events import Variant
from tests.e2e.conftest import Operator

N = 10_000


async def _stats(api: httpx.AsyncClient, job_id: int, targeted: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        data: dict[str, Any] = (await api.get("/stats", params={"sendJobId": job_id})).json()[
            "data"
        ]
        if data["targeted"] >= targeted or time.monotonic() > deadline:
            return data
        await asyncio.sleep(0.25)


async def test_a_split_gives_each_arm_its_share_and_the_holdout_nothing(
    operator: Operator, api: httpx.AsyncClient, device_api: httpx.AsyncClient
) -> None:
    run = uuid.uuid4().hex[:8]
    contacts = [f"ab-{run}-{i}" for i in range(N)]
    body = "".join(json.dumps({"contactId": c, "attributes": {}}) + "\n" for c in contacts)
    imported = await api.post(
        "/contacts/batch", content=body, headers={"Content-Type": "application/x-ndjson"}
    )
    assert imported.status_code == 200, imported.text
    control = await operator.inbox_message("Control")
    challenger = await operator.inbox_message("Challenger")
    job_id = await operator.send(
        {"inboxMessage": {"inboxContentId": control}},
        contacts,
        variants=[
            {"name": "A", "percent": 45},
            {"name": "B", "percent": 45, "contentId": challenger},
        ],
        holdoutPercent=10,
    )
    stats = await _stats(api, job_id, N)

    # every recipient got what the split says, and the held-out ones nothing
    rows = await operator.pool.fetch(
        "SELECT contact_id, content_id FROM inbox_entries WHERE send_job_id = $1", job_id
    )
    got = {r["contact_id"]: r["content_id"] for r in rows}
    arms = [Variant(name="A", percent=45), Variant(name="B", percent=45, content_id=challenger)]
    expected: dict[str, str | None] = {}
    for contact in contacts:
        arm = assign(job_id, contact, arms, 10)
        expected[contact] = None if arm is None else (arm.content_id or control)
    assert got == {c: content for c, content in expected.items() if content is not None}
    shares = {
        "A": sum(1 for c in expected.values() if c == control) / N,
        "B": sum(1 for c in expected.values() if c == challenger) / N,
        "holdout": sum(1 for c in expected.values() if c is None) / N,
    }
    assert abs(shares["A"] - 0.45) <= 0.02 and abs(shares["B"] - 0.45) <= 0.02, shares
    assert abs(shares["holdout"] - 0.10) <= 0.02, shares
    held_out = next(c for c, content in expected.items() if content is None)
    listed = await device_api.get("/v1/inbox", headers=operator.device(held_out))
    assert listed.json()["messages"] == []

    # statistics: totals, and per arm
    assert stats["targeted"] == N
    assert stats["delivered"] == len(got)
    assert stats["skipped"]["holdout"] == N - len(got)
    by_name = {v["name"]: v for v in stats["variants"]}
    assert by_name["A"]["delivered"] == round(shares["A"] * N)
    assert by_name["B"]["delivered"] == round(shares["B"] * N)
    assert by_name["B"]["contentId"] == challenger
    assert by_name["holdout"]["targeted"] == round(shares["holdout"] * N)


async def test_a_redelivered_split_puts_everyone_in_the_same_arm(
    operator: Operator, api: httpx.AsyncClient
) -> None:
    """Assignment depends on the job and the contact only: the same send's batches
    delivered again (or by another worker) agree."""
    contacts = [await operator.contact(f"ab{i}") for i in range(20)]
    message = await operator.inbox_message("Hi")
    job = await operator.send(
        {"inboxMessage": {"inboxContentId": message}}, contacts, holdoutPercent=50
    )
    stats = await _stats(api, job, len(contacts))
    arms = [Variant(name="default", percent=50)]
    kept = [c for c in contacts if assign(job, c, arms, 50) is not None]
    assert stats["delivered"] == len(kept)
    assert [v["name"] for v in stats["variants"]] == ["default", "holdout"]


async def test_bad_splits_are_refused_naming_the_field(
    operator: Operator, api: httpx.AsyncClient
) -> None:
    contact = await operator.contact("abbad")
    inbox = await operator.inbox_message("Hi")
    inapp = await operator.inapp()
    base = {
        "channelQualifiers": [operator.app["appKey"]],
        "content": {"inboxMessage": {"inboxContentId": inbox}},
        "contacts": [{"contactId": contact}],
    }
    cases: list[tuple[dict[str, Any], str]] = [
        ({"variants": [{"name": "A", "percent": 50}]}, "variants"),  # adds up to 50
        ({"variants": [{"name": "A", "percent": 60}], "holdoutPercent": 50}, "variants"),
        (
            {
                "variants": [
                    {"name": "A", "percent": 50},
                    {"name": "a", "percent": 50, "contentId": inapp},
                ]
            },
            "variants",
        ),
        (
            {
                "variants": [
                    {"name": "A", "percent": 50},
                    {"name": "B", "percent": 50, "contentId": inapp},
                ]
            },
            "variants.1.contentId",
        ),
        (
            {"variants": [{"name": "A", "percent": 50}, {"name": "B", "percent": 50}]},
            "variants.1.contentId",
        ),
        ({"variants": [{"name": "holdout", "percent": 100}]}, "variants.0.name"),
        ({"holdoutPercent": 100}, "holdoutPercent"),
        ({"variants": [{"name": "no spaces", "percent": 100}]}, "variants.0.name"),
    ]
    for extra, field in cases:
        response = await api.post("/channels/push/sends", json={**base, **extra})
        assert response.status_code in (400, 422), (extra, response.text)
        assert field in response.json()["meta"]["fieldErrors"], (extra, response.text)
