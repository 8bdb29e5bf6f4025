"""In-app messages on a web page, in a real Chromium against the real stack: the seed's
templates, one at a time in the phone home's order, view/click/dismiss reported and
counted in the statistics, maxViews honoured across reloads, hostile content inert."""

from __future__ import annotations

import asyncio
import copy
import io
import time
from typing import Any

import httpx
from PIL import Image, ImageDraw

from tests.browser.conftest import Browser
from tests.e2e.conftest import Operator
from tests.seed_payloads import BOTTOM_BANNER, IMAGE_TEMPLATE, TOP_BANNER

SHOW = (
    "window.__handle = window.Pigeonhole.showInAppMessages("
    "{openUrl: (url) => { window.__opened = url; }});"
)


def web(seed: dict[str, Any], **content: Any) -> dict[str, Any]:
    """A seed payload with a `web` template (the gcm one, with `content` overrides)."""
    body = copy.deepcopy(seed)
    body["payload"]["web"] = copy.deepcopy(body["payload"]["gcm"])
    body["payload"]["web"]["content"].update(content)
    return body


async def send(operator: Operator, body: dict[str, Any], contact: str, **message: Any) -> int:
    content = await operator.inapp(**body)
    job = await operator.send({"inAppMessage": {"inAppContentId": content, **message}}, [contact])
    await operator.delivered(job)
    return job


async def stats(api: httpx.AsyncClient, job: int, key: str, value: int) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        data: dict[str, Any] = (await api.get("/stats", params={"sendJobId": job})).json()["data"]
        if data[key] >= value or time.monotonic() > deadline:
            return data
        await asyncio.sleep(0.2)


def start(browser: Browser, contact: str) -> None:
    browser.open()
    browser.init(contact)
    browser.js(SHOW)


async def test_top_and_bottom_banners_one_at_a_time_and_dismiss_is_counted(
    browser: Browser, operator: Operator, api: httpx.AsyncClient
) -> None:
    contact = await operator.contact("banner", first_name="Ada")
    bottom = await send(
        operator,
        web(
            BOTTOM_BANNER,
            title="Spring sale, %%First_Name%%",
            text="20% off everything until Sunday.",
            action={"type": "url", "value": "https://example.com/sale"},
        ),
        contact,
    )
    top = await send(
        operator,
        web(
            TOP_BANNER,
            title="Your order has shipped",
            text="Track it from your account.",
            color="#d9480f",
        ),
        contact,
    )
    start(browser, contact)

    # newest first: the top banner, alone
    banner = browser.wait_for(".ph-inapp--top", "Your order has shipped")
    assert len(browser.driver.find_elements("css selector", ".ph-inapp")) == 1
    assert (
        banner.get_attribute("role") == "dialog" and banner.get_attribute("aria-live") == "polite"
    )
    assert banner.location["y"] < 100  # at the top of the 800 px viewport
    browser.screenshot("inapp-top")
    browser.js("document.querySelector('.ph-inapp__close').click();")

    # then the bottom banner, personalized
    banner = browser.wait_for(".ph-inapp--bottom", "Spring sale, Ada")
    assert banner.location["y"] > 600
    browser.screenshot("inapp-bottom")
    assert [e["message"]["id"] for e in browser.events("inapp:view")] == [
        str(await entry_id(operator, top)),
        str(await entry_id(operator, bottom)),
    ]
    assert (await stats(api, top, "dismissed", 1))["dismissed"] == 1
    assert (await stats(api, top, "viewed", 1))["viewed"] == 1


async def entry_id(operator: Operator, job: int) -> int:
    value: int = await operator.pool.fetchval(
        "SELECT id FROM inbox_entries WHERE send_job_id = $1", job
    )
    return value


async def test_a_click_opens_the_action_reports_click_and_the_message_is_gone(
    browser: Browser, operator: Operator, api: httpx.AsyncClient
) -> None:
    contact = await operator.contact("click")
    job = await send(
        operator,
        web(
            BOTTOM_BANNER,
            title="Tap me",
            action={"type": "url", "value": "https://example.com/landing"},
        ),
        contact,
    )
    start(browser, contact)
    browser.wait_for(".ph-inapp--bottom", "Tap me").find_element(
        "css selector", ".ph-inapp__body"
    ).click()
    browser.wait_gone(".ph-inapp")
    assert browser.js("return window.__opened") == "https://example.com/landing"
    assert (await stats(api, job, "clicked", 1))["clicked"] == 1

    # a click removes it whatever views are left: not on the next page load either
    start(browser, contact)
    browser.until(lambda _: len(browser.events("sync")) >= 2, "two phone homes")
    assert browser.driver.find_elements("css selector", ".ph-inapp") == []


async def test_after_max_views_displays_it_no_longer_shows(
    browser: Browser, operator: Operator, api: httpx.AsyncClient
) -> None:
    contact = await operator.contact("views")
    job = await send(operator, web(BOTTOM_BANNER, title="Twice only"), contact, maxViews=2)
    for _ in range(2):  # two page loads, one display each
        start(browser, contact)
        browser.wait_for(".ph-inapp--bottom", "Twice only")
    start(browser, contact)  # the third load, right away
    browser.until(lambda _: len(browser.events("sync")) >= 2, "two phone homes")
    assert browser.driver.find_elements("css selector", ".ph-inapp") == []
    assert (await stats(api, job, "viewed", 1))["viewed"] == 1  # one message, viewed
    views = await operator.pool.fetchval(
        "SELECT views FROM inbox_entries WHERE send_job_id = $1", job
    )
    assert views == 2


async def test_markup_and_javascript_urls_in_a_message_are_inert(
    browser: Browser, operator: Operator
) -> None:
    """The publisher and delivery never let these through; the SDK holds the line anyway:
    a stored copy rewritten in PostgreSQL stands for a server that did."""
    contact = await operator.contact("hostile")
    job = await send(operator, web(BOTTOM_BANNER, title="placeholder"), contact)
    hostile = web(BOTTOM_BANNER)
    hostile["payload"]["web"]["content"].update(
        title='<img src=x onerror="window.__pwned=1">Hello',
        text="<script>window.__pwned=2</script>",
        mainImage="javascript:window.__pwned=3",
        icon="data:image/svg+xml,<svg onload='window.__pwned=4'/>",
        color="red; background: url(javascript:alert(1))",
        action={"type": "url", "value": "javascript:window.__pwned=5"},
    )
    await operator.pool.execute(
        "UPDATE inbox_entries SET payload = $2, merge_values = NULL WHERE send_job_id = $1",
        job,
        hostile,  # the pool's codec makes it jsonb
    )
    await bump(operator, contact)
    start(browser, contact)
    banner = browser.wait_for(".ph-inapp--bottom")
    title = banner.find_element("css selector", ".ph-inapp__title")
    assert title.text == '<img src=x onerror="window.__pwned=1">Hello'
    assert banner.find_elements("css selector", "img, script, svg") == []
    assert banner.find_element("css selector", ".ph-inapp__body").tag_name == "div"  # no action
    banner.find_element("css selector", ".ph-inapp__body").click()
    assert browser.js("return window.__pwned") is None
    assert browser.js("return window.__opened") is None
    assert browser.js("return location.protocol") == "http:"
    assert "javascript" not in (banner.get_attribute("style") or "")


async def bump(operator: Operator, contact: str) -> None:
    """A new inbox version, so the phone home answers the rewritten copy."""
    from shared.inbox_signals import inboxes_changed
    from shared.redis_client import connect

    redis = connect("redis://127.0.0.1:6379/0")
    try:
        await inboxes_changed(redis, [contact])
    finally:
        await redis.aclose()


def png() -> bytes:
    image = Image.new("RGB", (840, 420), "#364fc7")
    draw = ImageDraw.Draw(image)
    for i in range(0, 840, 40):
        draw.rectangle([i, 300 - i // 4, i + 30, 420], fill="#91a7ff")
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


async def test_the_image_template_is_a_dialog_with_focus_and_escape_dismisses(
    browser: Browser, operator: Operator, api: httpx.AsyncClient
) -> None:
    contact = await operator.contact("image")
    media = await api.post("/media", content=png(), headers={"content-type": "image/png"})
    image = media.json()["data"]["url"]
    job = await send(
        operator,
        web(
            IMAGE_TEMPLATE,
            title="New collection",
            text="Autumn is here.",
            image=image,
            action={"type": "url", "value": "https://example.com/autumn"},
        ),
        contact,
    )
    start(browser, contact)
    card = browser.wait_for(".ph-inapp--image", "New collection")
    assert card.get_attribute("aria-modal") == "true"
    assert card.find_element("css selector", "img.ph-inapp__media").get_attribute("src") == image
    browser.until(
        lambda _: browser.js("return document.activeElement.className") == "ph-inapp__close",
        "focus on the close button",
    )
    browser.until(
        lambda _: browser.js("return document.querySelector('img.ph-inapp__media').complete"),
        "the image",
    )
    browser.screenshot("inapp-image")
    browser.driver.switch_to.active_element.send_keys("\ue00c")  # Escape
    browser.wait_gone(".ph-inapp")
    assert [e["message"]["id"] for e in browser.events("inapp:dismiss")] == [
        str(await entry_id(operator, job))
    ]
