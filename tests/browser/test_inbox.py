"""The App Inbox widget and the badge in a real Chromium against the real stack: live
arrival without a reload, read state shared across tabs, pinned first, archive, delete,
categories, paging, and text-only rendering."""

from __future__ import annotations

from functools import partial
from typing import Any

import httpx
from selenium.webdriver.remote.webelement import WebElement

from tests.browser.conftest import Browser
from tests.e2e.conftest import Operator

MOUNT = """
window.__inbox = window.Pigeonhole.mountInbox(document.getElementById('inbox'), arguments[0]);
window.__badge = window.Pigeonhole.mountBadge(document.getElementById('badge'));
"""


async def deliver(operator: Operator, contact: str, title: str, **fields: Any) -> None:
    content = await operator.inbox_message(title, **fields)
    job = await operator.send({"inboxMessage": {"inboxContentId": content}}, [contact])
    await operator.delivered(job)


def start(browser: Browser, contact: str, **options: Any) -> None:
    browser.open()
    browser.init(contact)
    browser.js(MOUNT, options)


def titles(browser: Browser) -> list[str]:
    found: list[str] = browser.js(
        "return [...document.querySelectorAll('.ph-inbox__item .ph-inbox__title')]"
        ".map((e) => e.lastChild.textContent);"
    )
    return found


def shows(browser: Browser, count: int, _: object) -> bool:
    return len(titles(browser)) == count


def badge(browser: Browser) -> str:
    text: str = browser.js(
        "const b = document.querySelector('#badge .ph-badge');"
        "return b && !b.hidden ? b.textContent : '';"
    )
    return text


def tabs(browser: Browser) -> list[str]:
    found: list[str] = browser.js(
        "return [...document.querySelectorAll('.ph-inbox__tab')].map((t) => t.textContent);"
    )
    return found


def item(browser: Browser, title: str) -> WebElement:
    return browser.wait_for(".ph-inbox__item", title)


async def test_a_message_arrives_live_and_the_badge_counts_it(
    browser: Browser, operator: Operator
) -> None:
    contact = await operator.contact("live", first_name="Ada")
    await deliver(operator, contact, "Welcome aboard")
    start(browser, contact)
    item(browser, "Welcome aboard")
    browser.until(lambda _: badge(browser) == "1", "the badge at 1")
    browser.js("window.__notReloaded = true;")

    await deliver(operator, contact, "Your order has shipped")
    item(browser, "Your order has shipped")
    browser.until(lambda _: badge(browser) == "2", "the badge at 2")
    assert titles(browser) == ["Your order has shipped", "Welcome aboard"]  # newest first
    assert browser.js("return window.__notReloaded") is True
    label = browser.js(
        "return document.querySelector('#badge .ph-badge').getAttribute('aria-label')"
    )
    assert label == "2 unread messages"


async def test_mark_all_read_in_one_tab_zeroes_the_badge_in_another(
    browser: Browser, operator: Operator
) -> None:
    contact = await operator.contact("tabs")
    for title in ("One", "Two", "Three"):
        await deliver(operator, contact, title)
    start(browser, contact)
    browser.until(lambda _: badge(browser) == "3", "the first tab's badge at 3")
    first = browser.driver.current_window_handle
    browser.new_tab()
    browser.init(contact)
    browser.js(MOUNT, {})
    browser.until(lambda _: badge(browser) == "3", "the second tab's badge at 3")
    browser.wait_event("connection", lambda d: d["state"] == "live")

    browser.switch_to(first)
    browser.wait_for(".ph-inbox__read-all").click()
    browser.until(lambda _: badge(browser) == "", "the first tab's badge gone")
    browser.switch_to(browser.driver.window_handles[-1])
    browser.until(lambda _: badge(browser) == "", "the second tab's badge gone")
    unread = browser.driver.find_elements("css selector", ".ph-inbox__item--unread")
    browser.until(
        lambda _: not browser.driver.find_elements("css selector", ".ph-inbox__item--unread"),
        f"no unread item in the second tab ({len(unread)} were)",
    )


async def test_pin_archive_delete_categories_and_the_screenshot(
    browser: Browser, operator: Operator, api: httpx.AsyncClient
) -> None:
    key = operator.app["appKey"]
    categories = [
        {"name": "orders", "description": "Orders"},
        {"name": "offers", "description": "Offers"},
    ]
    assert (
        await api.put(f"/apps/{key}/categories", json={"categories": categories})
    ).status_code == 200
    contact = await operator.contact("states", first_name="Ada")
    await deliver(
        operator,
        contact,
        "Receipt #1042",
        text="Thanks for your order, %%first_name%%.",
        category="orders",
    )
    await deliver(
        operator,
        contact,
        "Autumn sale: 20% off",
        text="Until Sunday, on everything.",
        category="offers",
    )
    await deliver(
        operator,
        contact,
        "Your parcel is on its way",
        text="It should arrive on Tuesday.",
        category="orders",
    )
    start(browser, contact)
    item(browser, "Receipt #1042")

    # pinned first
    browser.js("document.querySelector('[aria-label=\"Pin: Receipt #1042\"]').click();")
    browser.until(lambda _: titles(browser)[0] == "Receipt #1042", "the pinned message first")
    # read
    browser.js(
        "document.querySelector('[aria-label=\"Mark read: Your parcel is on its way\"]').click();"
    )
    browser.until(lambda _: badge(browser) == "2", "2 unread")
    browser.until(lambda _: tabs(browser) == ["All2", "orders1", "offers1"], "the tabs' counts")
    browser.screenshot("inbox", browser.wait_for(".ph-inbox"))

    # markup is text (and arrives live)
    hostile = '<b onmouseover="window.__pwned=1">Bold</b> & <i>safe</i>'
    await deliver(
        operator, contact, hostile, text="<script>window.__pwned=2</script>", category="offers"
    )
    browser.until(lambda _: hostile in titles(browser), "the hostile title, as text")
    found = browser.driver.find_elements(
        "css selector", ".ph-inbox b, .ph-inbox i, .ph-inbox script"
    )
    assert found == []
    browser.until(lambda _: tabs(browser) == ["All3", "orders1", "offers2"], "the tabs' counts")
    browser.js("document.querySelector('.ph-inbox__tab[data-category=offers]').click();")
    browser.until(
        lambda _: sorted(titles(browser)) == sorted([hostile, "Autumn sale: 20% off"]),
        "the offers tab",
    )
    browser.js("document.querySelector('.ph-inbox__tab[data-category=\"\"]').click();")
    browser.until(lambda _: len(titles(browser)) == 4, "all four again")

    # archive: out of the inbox view, in the archived one; delete: gone
    browser.js("document.querySelector('[aria-label=\"Archive: Autumn sale: 20% off\"]').click();")
    browser.until(lambda _: "Autumn sale: 20% off" not in titles(browser), "archived out of view")
    browser.js(
        "document.querySelector('[aria-label=\"Delete: Your parcel is on its way\"]').click();"
    )
    browser.until(lambda _: "Your parcel is on its way" not in titles(browser), "deleted")
    browser.js("document.querySelector('.ph-inbox__archived-toggle').click();")
    browser.until(lambda _: titles(browser) == ["Autumn sale: 20% off"], "the archived view")
    assert browser.js("return window.__pwned") is None


async def test_paging_loads_the_next_page_until_none_is_left(
    browser: Browser, operator: Operator
) -> None:
    contact = await operator.contact("paging")
    content = await operator.inbox_message("Daily digest")
    for _ in range(12):  # twelve sends of one message: twelve entries
        job = await operator.send({"inboxMessage": {"inboxContentId": content}}, [contact])
        await operator.delivered(job)
    start(browser, contact, pageSize=5)
    browser.until(lambda _: len(titles(browser)) == 5, "the first page of 5")
    for shown in (10, 12):
        browser.wait_for(".ph-inbox__more").click()
        browser.until(partial(shows, browser, shown), f"{shown} shown")
    browser.wait_gone(".ph-inbox__more")
    ids = browser.js(
        "return [...document.querySelectorAll('.ph-inbox__item')].map((e) => e.dataset.id);"
    )
    assert len(set(ids)) == 12
    assert ids == sorted(ids, key=int, reverse=True)


async def test_without_the_stream_the_widget_polls_at_next_sync_after_seconds(
    browser: Browser, operator: Operator, api: httpx.AsyncClient
) -> None:
    """A page whose stream cannot open (a proxy that buffers, say: here `stream: false`)
    phones home every `nextSyncAfterSeconds` and still sees a delivery without a reload."""
    created = await api.post("/apps", json={"name": "polling", "nextSyncAfterSeconds": 5})
    assert created.status_code == 201, created.text
    polling = Operator(api, operator.pool, created.json()["data"])
    contact = await polling.contact("poll")
    browser.open()
    browser.init(contact, app=polling.app, stream=False)
    browser.js(MOUNT, {})
    browser.wait_for(".ph-inbox__empty", "No messages yet.")
    browser.js("window.__notReloaded = true;")
    await deliver(polling, contact, "Found by polling")
    item(browser, "Found by polling")
    browser.until(lambda _: badge(browser) == "1", "the badge at 1")
    assert browser.js("return window.__notReloaded") is True
    assert not [e for e in browser.events("connection") if e["state"] == "live"]
