"""Content variants on the real stack: locales chosen at delivery, priority on the phone home."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import Operator

LOCALES = {"fr": {"title": "Bonjour %%First_Name%%"}, "fr-CA": {"title": "Allô %%First_Name%%"}}


async def test_locale_falls_back_from_region_to_language_to_default(
    operator: Operator, device_api: httpx.AsyncClient
) -> None:
    inapp = await operator.inapp(locales=LOCALES)
    inbox = await operator.inbox_message(
        "Hello %%first_name%%", locales={"fr": {"title": "Bonjour %%first_name%%", "text": "Salut"}}
    )
    people = {
        "quebec": await operator.contact("qc", first_name="Ada", locale="fr-CA"),
        "belgium": await operator.contact("be", first_name="Bo", locale="fr_BE"),
        "germany": await operator.contact("de", first_name="Cy", locale="de-DE"),
        "unknown": await operator.contact("xx", first_name="Di"),
    }
    contacts = list(people.values())
    jobs = [
        await operator.send({"inAppMessage": {"inAppContentId": inapp}}, contacts),
        await operator.send({"inboxMessage": {"inboxContentId": inbox}}, contacts),
    ]
    for job in jobs:
        await operator.delivered(job, count=len(contacts))

    async def copies(contact: str) -> tuple[str, str, str]:
        headers = operator.device(contact)
        sync = await device_api.post("/v1/sync", json={"platform": "gcm"}, headers=headers)
        listed = await device_api.get("/v1/inbox", headers=headers)
        (message,) = sync.json()["messages"]
        (entry,) = listed.json()["messages"]
        return message["content"]["title"], entry["title"], entry["text"]

    assert await copies(people["quebec"]) == ("Allô Ada", "Bonjour Ada", "Salut")
    assert await copies(people["belgium"]) == ("Bonjour Bo", "Bonjour Bo", "Salut")
    assert await copies(people["germany"]) == ("Hello Cy", "Hello Cy", "Hi Cy")
    assert await copies(people["unknown"]) == ("Hello Di", "Hello Di", "Hi Di")


async def test_bad_locales_are_refused_naming_the_field(
    api: httpx.AsyncClient, operator: Operator
) -> None:
    from tests.seed_payloads import BOTTOM_BANNER

    for locales, field in [
        ({"not a tag": {"title": "x"}}, "locales"),
        ({"fr": {"title": "%%broken"}}, "locales.fr.title"),
        ({"fr": {"action": {"type": "url", "value": "javascript:alert(1)"}}}, "locales.fr"),
    ]:
        response = await api.post(
            "/channels/push/inappcontent", json={**BOTTOM_BANNER, "locales": locales}
        )
        assert response.status_code in (400, 422), response.text
        assert any(key.startswith(field) for key in response.json()["meta"]["fieldErrors"]), (
            response.text
        )


async def test_the_phone_home_lists_highest_priority_first_then_newest(
    operator: Operator, device_api: httpx.AsyncClient
) -> None:
    contact = await operator.contact("prio")
    low = await operator.inapp()  # priority 0
    content_high = await operator.inapp(priority=5)
    sent = {}
    for name, message in [
        ("content-5", {"inAppContentId": content_high}),
        ("send-9", {"inAppContentId": low, "priority": 9}),
        ("default-0", {"inAppContentId": low}),
        ("send-overrides-content-1", {"inAppContentId": content_high, "priority": 1}),
    ]:
        sent[await operator.send({"inAppMessage": message}, [contact])] = name
    for job in sent:
        await operator.delivered(job)
    answer = await device_api.post(
        "/v1/sync", json={"platform": "gcm"}, headers=operator.device(contact)
    )
    messages = answer.json()["messages"]
    ids = {m["id"]: m for m in messages}
    by_job = {
        sent[job]: ids[str(entry)]["priority"]
        for job, entry in [
            (job, await operator.pool.fetchval(
                "SELECT id FROM inbox_entries WHERE send_job_id = $1", job
            ))
            for job in sent
        ]
    }  # fmt: skip
    assert by_job == {"content-5": 5, "send-9": 9, "default-0": 0, "send-overrides-content-1": 1}
    assert [m["priority"] for m in messages] == [9, 5, 1, 0]
