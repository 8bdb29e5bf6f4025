"""Entries keep merge-tag texts and sync renders them: a device gets exactly what an
entry stored rendered gives, whichever way the entry was filed, and a content deleted
after delivery changes nothing a device sees."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from shared.personalization import compile_tree
from tests.e2e.conftest import Operator
from tests.e2e.test_phone_home import phone_home


async def _as_stored_rendered(pool: asyncpg.Pool, job_id: int) -> None:
    """Turn the job's entries into what migration 0013 found in place: the rendered copy
    in ``payload``, no merge-tag texts, no platform bits."""
    rows = await pool.fetch(
        """SELECT e.id, e.merge_values, c.body FROM inbox_entries e
             JOIN contents c ON c.id = e.content_id WHERE e.send_job_id = $1""",
        job_id,
    )
    assert rows and all(r["merge_values"] for r in rows), "filed by value to begin with"
    for row in rows:
        copy = compile_tree(row["body"])(row["merge_values"])
        await pool.execute(
            "UPDATE inbox_entries SET payload = $2, merge_values = NULL, platforms = NULL "
            "WHERE id = $1",
            row["id"], copy,
        )  # fmt: skip


async def _inbox(device_api: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await device_api.get("/v1/inbox", headers=headers)
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


async def test_in_app_messages_are_the_same_stored_by_value_or_rendered(
    operator: Operator, device_api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    content_id = await operator.inapp()
    who = await operator.contact("byvalue", first_name='Zoë "<b>"', Dated="2026-11-21")
    job = await operator.send({"inAppMessage": {"inAppContentId": content_id}}, [who])
    await operator.delivered(job)
    headers = operator.device(who)
    by_value = await phone_home(device_api, headers, "gcm")
    [message] = by_value["messages"]
    assert message["content"]["title"] == 'Hello Zoë "<b>"'
    assert message["content"]["text"].endswith("starting now 21-11-2026")
    assert (await phone_home(device_api, headers, "web"))["messages"] == []

    await _as_stored_rendered(pool, job)
    assert (await phone_home(device_api, headers, "gcm"))["messages"] == by_value["messages"]
    assert (await phone_home(device_api, headers, "web"))["messages"] == []


async def test_app_inbox_messages_are_the_same_stored_by_value_or_rendered(
    operator: Operator, device_api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    content_id = await operator.inbox_message("For %%first_name%%")
    who = await operator.contact("byvalue", first_name="Ada")
    job = await operator.send({"inboxMessage": {"inboxContentId": content_id}}, [who])
    await operator.delivered(job)
    headers = operator.device(who)
    by_value = await _inbox(device_api, headers)
    assert [(m["title"], m["text"]) for m in by_value] == [("For Ada", "Hi Ada")]

    await _as_stored_rendered(pool, job)
    assert await _inbox(device_api, headers) == by_value


async def test_a_content_deleted_after_delivery_is_still_shown_as_delivered(
    operator: Operator, device_api: httpx.AsyncClient
) -> None:
    inapp_id = await operator.inapp()
    inbox_id = await operator.inbox_message("Kept for %%first_name%%")
    who = await operator.contact("deleted", first_name="Ada")
    jobs = [
        await operator.send({"inAppMessage": {"inAppContentId": inapp_id}}, [who]),
        await operator.send({"inboxMessage": {"inboxContentId": inbox_id}}, [who]),
    ]
    for job in jobs:
        await operator.delivered(job)
    headers = operator.device(who)
    before = (await phone_home(device_api, headers))["messages"], await _inbox(device_api, headers)

    for path in (f"/channels/push/inappcontent/{inapp_id}", f"/appinbox/messages/{inbox_id}"):
        response = await operator.api.delete(path)
        assert response.status_code in (200, 204), response.text
        assert (await operator.api.get(path)).status_code == 404

    after = (await phone_home(device_api, headers))["messages"], await _inbox(device_api, headers)
    assert after == before
    assert before[0][0]["content"]["title"] == "Hello Ada"
    assert before[1][0]["title"] == "Kept for Ada"
