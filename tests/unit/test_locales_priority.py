"""Locale variants and priority, decided at delivery (in-memory fakes of test_deliverer)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from services.delivery.deliverer import priority_for
from services.delivery.repository import ContactState
from shared.events import Recipient
from shared.personalization.locales import localized, variant_for
from tests.unit.test_deliverer import CONTENT, FakeStore, batch, deliverer

LOCALES = {"fr": {"title": "Bonjour %%First_Name%%"}, "fr-CA": {"title": "Allô %%First_Name%%"}}


@pytest.mark.parametrize(
    ("locale", "variant"),
    [
        ("fr-CA", "fr-CA"),
        ("fr_ca", "fr-CA"),
        ("FR-ca", "fr-CA"),
        ("fr-BE", "fr"),
        ("fr", "fr"),
        ("de-DE", None),
        ("", None),
        (None, None),
        (42, None),
        ("f", None),
    ],
)
def test_the_variant_is_the_exact_tag_then_the_language_then_the_default(
    locale: object, variant: str | None
) -> None:
    assert variant_for(LOCALES, locale) == variant


def test_a_variant_replaces_the_fields_of_every_platform_and_merges_the_action() -> None:
    body = {
        "payload": {
            "gcm": {
                "content": {
                    "title": "Hi",
                    "text": "t",
                    "action": {"type": "url", "value": "https://a"},
                }
            },
            "web": {"content": {"title": "Hi web"}},
        },
        "locales": {"fr": {"title": "Salut", "action": {"value": "https://a/fr"}}},
    }
    copy = localized("inapp", body, "fr")
    assert "locales" not in copy
    assert copy["payload"]["gcm"]["content"] == {
        "title": "Salut", "text": "t", "action": {"type": "url", "value": "https://a/fr"},
    }  # fmt: skip
    assert copy["payload"]["web"]["content"]["title"] == "Salut"
    assert localized("inbox", {"title": "Hi", "locales": {"fr": {"title": "Salut"}}}, "fr") == {
        "title": "Salut"
    }
    assert localized("inapp", body, None)["payload"] == body["payload"]


async def test_each_recipient_gets_its_locale_and_the_rest_the_default() -> None:
    content = replace(CONTENT, body={**CONTENT.body, "locales": LOCALES})
    store = FakeStore(
        content,
        {
            "quebec": ContactState({"first_name": "Ada", "Locale": "fr-CA"}, {}),
            "belgium": ContactState({"first_name": "Bo", "locale": "fr-BE"}, {}),
            "german": ContactState({"first_name": "Cy", "locale": "de"}, {}),
            "none": ContactState({"first_name": "Di"}, {}),
            "odd": ContactState({"first_name": "Ed", "locale": {"x": 1}}, {}),
        },
    )
    d, _, _ = deliverer(store)
    result = await d.deliver(batch("quebec", "belgium", "german", "none", "odd"))
    assert {o.outcome for o in result.outcomes} == {"delivered"}

    def title(contact: str) -> Any:
        return store.copy(7, contact)["payload"]["gcm"]["content"]["title"]

    assert title("quebec") == "Allô Ada"
    assert title("belgium") == "Bonjour Bo"
    assert [title(c) for c in ("german", "none", "odd")] == ["Hello Cy", "Hello Di", "Hello Ed"]
    assert "locales" not in store.copy(7, "quebec")


async def test_the_sends_personalization_locale_comes_before_the_attribute() -> None:
    content = replace(CONTENT, body={**CONTENT.body, "locales": LOCALES})
    store = FakeStore(content, {"a": ContactState({"locale": "de"}, {})})
    d, _, _ = deliverer(store)
    one = batch("a")
    one = one.model_copy(
        update={"recipients": [Recipient(contact_id="a", personalization={"LOCALE": "fr"})]}
    )
    await d.deliver(one)
    assert store.copy(7, "a")["payload"]["gcm"]["content"]["title"] == "Bonjour Valued Customer"


def test_priority_send_over_content_default_zero() -> None:
    with_priority = replace(CONTENT, body={**CONTENT.body, "priority": 7})
    assert priority_for(batch("a"), CONTENT) == 0
    assert priority_for(batch("a"), with_priority) == 7
    assert priority_for(batch("a", priority=2), with_priority) == 2
    assert priority_for(batch("a", priority=0), with_priority) == 0
