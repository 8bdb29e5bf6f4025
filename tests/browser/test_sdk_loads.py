"""The SDK on a customer's page: loaded from sync by a page on ANOTHER origin (so every
call is a CORS request with X-App-Key and Authorization), it phones home, goes live, and
keeps what it stores per app and contact."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.browser.conftest import Browser
from tests.conftest import SYNC_URL
from tests.e2e.conftest import Operator
from tests.seed_payloads import BOTTOM_BANNER


def web_banner(title: str) -> dict[str, Any]:
    """The seed's bottom banner with a `web` template (what the web SDK is sent)."""
    body = copy.deepcopy(BOTTOM_BANNER)
    body["payload"]["web"] = copy.deepcopy(body["payload"]["gcm"])
    body["payload"]["web"]["content"]["title"] = title
    return body


async def send_inapp(operator: Operator, title: str, contact: str) -> None:
    content = await operator.inapp(**web_banner(title))
    job = await operator.send({"inAppMessage": {"inAppContentId": content}}, [contact])
    await operator.delivered(job)


async def send_inbox(operator: Operator, title: str, contact: str) -> None:
    content = await operator.inbox_message(title)
    job = await operator.send({"inboxMessage": {"inboxContentId": content}}, [contact])
    await operator.delivered(job)


@pytest.mark.parametrize("page", ["module.html", "classic.html"])
async def test_both_builds_phone_home_and_go_live_from_another_origin(
    browser: Browser, operator: Operator, page: str
) -> None:
    contact = await operator.contact("web", first_name="Ada")
    await send_inapp(operator, "Spring sale", contact)
    await send_inbox(operator, "Your receipt", contact)

    browser.open(page)
    assert browser.js("return location.origin") != SYNC_URL  # a cross-origin page
    browser.init(contact)

    # the phone home (a preflighted POST with X-App-Key + Authorization) answered
    synced = browser.wait_event("sync", lambda d: d["inboxUnreadCount"] == 1)
    assert [m["content"]["title"] for m in synced["messages"]] == ["Spring sale"]
    assert synced["messages"][0]["template"] == "default"
    # the stream (ticket, then EventSource) opened and says what the inbox holds
    browser.wait_event("connection", lambda d: d["state"] == "live")
    browser.wait_event("inbox", lambda d: d["unreadCount"] == 1)

    # live: a delivery reaches the open page without a reload
    await send_inbox(operator, "Your invoice", contact)
    browser.wait_event("inbox", lambda d: d["unreadCount"] == 2)
    browser.wait_event("sync", lambda d: d["inboxUnreadCount"] == 2)


def sdk_keys(browser: Browser, app_key: str, contact: str) -> list[str]:
    prefix = f"pigeonhole:v1:{app_key}:{contact}:"
    return sorted(key for key in browser.local_storage() if key.startswith(prefix))


async def test_two_contacts_in_one_browser_never_share_what_is_stored(
    browser: Browser, operator: Operator, app: dict[str, str]
) -> None:
    ada = await operator.contact("ada", first_name="Ada")
    bob = await operator.contact("bob", first_name="Bob")
    await send_inapp(operator, "For Ada only", ada)

    browser.open()
    browser.init(ada)
    synced = browser.wait_event("sync")
    assert [m["content"]["title"] for m in synced["messages"]] == ["For Ada only"]
    browser.until(lambda _: sdk_keys(browser, app["appKey"], ada), "Ada's stored cursor")

    # Bob signs in on the same page, then in a reloaded page: Ada's cursor (which would
    # answer `changed: false` and hand back her held message) is never his
    browser.init(bob)
    assert browser.wait_event("sync")["messages"] == []
    browser.until(lambda _: sdk_keys(browser, app["appKey"], bob), "Bob's stored cursor")
    browser.open()
    browser.init(bob)
    assert browser.wait_event("sync")["messages"] == []

    keys = browser.local_storage()
    assert all(key.startswith("pigeonhole:v1:") for key in keys), keys  # nothing else stored
    ada_keys = sdk_keys(browser, app["appKey"], ada)
    bob_keys = sdk_keys(browser, app["appKey"], bob)
    assert any("For Ada only" in keys[key] for key in ada_keys), keys
    assert not any("For Ada only" in keys[key] for key in bob_keys), keys

    # Ada in another app keeps apart too; back in this one she still has her message
    response = await operator.api.post("/apps", json={"name": "test-other"})
    assert response.status_code == 201, response.text
    other_app = response.json()["data"]
    browser.open()
    browser.init(ada, app=other_app)
    assert browser.wait_event("sync")["messages"] == []
    browser.until(lambda _: sdk_keys(browser, other_app["appKey"], ada), "her other app's cursor")
    browser.open()
    browser.init(ada)
    assert [m["content"]["title"] for m in browser.wait_event("sync")["messages"]] == [
        "For Ada only"
    ]


async def test_banner_inbox_and_badge_together_on_one_page(
    browser: Browser, operator: Operator, app: dict[str, str]
) -> None:
    """What `make demo` shows: the three components side by side (the guide's first image)."""
    categories = [{"name": "offers", "description": "Sales"}, {"name": "news", "description": ""}]
    response = await operator.api.put(
        f"/apps/{app['appKey']}/categories", json={"categories": categories}
    )
    assert response.status_code == 200, response.text
    contact = await operator.contact("web", first_name="Ada")
    for title, category in [("Your order has shipped", "news"), ("20% off shoes", "offers")]:
        content = await operator.inbox_message(title, category=category)
        job = await operator.send({"inboxMessage": {"inboxContentId": content}}, [contact])
        await operator.delivered(job)
    await send_inapp(operator, "Spring sale", contact)

    browser.open()
    browser.init(contact)
    browser.js(
        "Pigeonhole.showInAppMessages();"
        "Pigeonhole.mountInbox(document.querySelector('#inbox'));"
        "Pigeonhole.mountBadge(document.querySelector('#badge'));"
    )
    browser.wait_for("#inbox", "Your order has shipped")
    browser.wait_for("#inbox", "20% off shoes")
    browser.wait_for("#badge", "2")
    browser.wait_for("[role=dialog]", "Spring sale")
    browser.screenshot("page")


async def test_a_page_written_for_the_first_script_still_works(
    browser: Browser, operator: Operator, app: dict[str, str]
) -> None:
    """/sdk/inbox.js is the classic build; its first calls, `mountInbox(el, {appKey,
    token})` without init and `phoneHome({appKey, token})`, still work."""
    contact = await operator.contact("legacy")
    await send_inbox(operator, "Still here", contact)
    browser.open("classic.html")
    options = {"appKey": app["appKey"], "token": browser.token(contact), "baseUrl": SYNC_URL}
    browser.js(
        "window.Pigeonhole.mountInbox(document.getElementById('inbox'), arguments[0]);"
        "window.Pigeonhole.phoneHome(arguments[0]).then((s) => { window.__synced = s; });",
        options,
    )
    browser.wait_for(".ph-inbox__item", "Still here")
    browser.until(
        lambda _: browser.js("return window.__synced && window.__synced.inboxUnreadCount") == 1,
        "the phone home",
    )
