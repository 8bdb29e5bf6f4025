"""The SDK loads from sync on a customer's page (another origin), phones home, goes live."""

from __future__ import annotations

import pytest

from tests.browser.conftest import Browser
from tests.e2e.conftest import Operator


@pytest.mark.parametrize("page", ["module.html", "classic.html"])
async def test_both_builds_load_phone_home_and_go_live(
    browser: Browser, operator: Operator, page: str
) -> None:
    contact = await operator.contact("web", first_name="Ada")
    browser.open(page)
    browser.init(contact)
    browser.wait_event("connection", lambda d: d["state"] == "live")
    synced = browser.wait_event("sync")
    assert synced["messages"] == []
