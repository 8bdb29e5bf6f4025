"""URL safety at publish: schemes read as a browser reads them, never script or data."""

from __future__ import annotations

import pytest

from services.publisher.content.url_policy import check, deep_link_problem, scheme_of


@pytest.mark.parametrize(
    "value",
    [
        "javascript:alert(1)",
        " JaVaScRiPt:alert(1)",
        "java\tscript:alert(1)",
        "java\nscript:alert(1)",
        "\x01\x02javascript:alert(1)",
        "vbscript:msgbox(1)",
        "data:text/html;base64,PHNjcmlwdD4=",
        "file:///etc/passwd",
        "blob:https://example.com/x",
    ],
)
def test_dangerous_schemes_are_refused_in_an_action_url(value: str) -> None:
    content = {"action": {"type": "url", "value": value}}
    refused, deep_links = check(content, "payload.gcm.content")
    assert list(refused) == ["payload.gcm.content.action.value"]
    assert "never allowed" in refused["payload.gcm.content.action.value"]
    assert deep_links == {}


def test_script_schemes_are_refused_in_any_string_but_plain_text_is_not() -> None:
    refused, _ = check({"buttons": [{"label": " javascript:go()"}], "title": "Data: 3 GB left"})
    assert list(refused) == ["buttons.0.label"]


def test_web_urls_icon_names_and_empty_values_pass() -> None:
    content = {
        "mainImage": "https://cdn.example.com/a.png",
        "icon": "note",
        "video": "",
        "action": {"type": "url", "value": "http://example.com/x?y=1"},
    }
    assert check(content) == ({}, {})


def test_a_deep_link_is_reported_for_the_apps_to_declare() -> None:
    refused, deep_links = check({"action": {"type": "url", "value": "MyApp://offers/1"}})
    assert refused == {}
    assert deep_links == {"action.value": "myapp"}


def test_media_fields_take_only_web_urls() -> None:
    refused, _ = check({"image": "myapp://img", "logoUrl": "ftp://x/y.png"})
    assert refused == {"image": "must be an http(s) URL, not myapp:"}


def test_a_merge_tag_may_start_only_the_fields_delivery_rechecks() -> None:
    refused, _ = check(
        {"payload": {"gcm": {"content": {"mainImage": "%%Img%%", "icon": "%%Icon%%"}}}}
    )
    assert list(refused) == ["payload.gcm.content.icon"]


def test_scheme_reading_and_declarable_schemes() -> None:
    assert scheme_of("  HTTPS://x") == "https"
    assert scheme_of("/relative/path") is None
    assert deep_link_problem("myapp") is None
    assert deep_link_problem("javascript") is not None
    assert deep_link_problem("https") is not None
    assert deep_link_problem("my app") is not None


def test_a_merge_tag_may_start_an_action_value_only_for_the_url_type() -> None:
    content = {"payload": {"gcm": {"content": {"action": {"type": "url", "value": "%%L%%"}}}}}
    assert check(content) == ({}, {})
    content["payload"]["gcm"]["content"]["action"]["type"] = "deeplink"
    refused, _ = check(content)
    assert list(refused) == ["payload.gcm.content.action.value"]
