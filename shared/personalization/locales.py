"""Locale variants of a content (docs/api.md, "Locales").

A content may carry ``locales``: per BCP 47 tag, the text fields that replace the default
ones for a contact of that locale — an in-app content's fields replace the same fields of
every platform template's ``content``; an App Inbox message's replace its own. Delivery
picks the variant from the recipient's ``locale`` (the send's personalization for that
recipient, else the contact's attribute; names case-insensitive): the exact tag, then its
language (``fr-CA`` → ``fr``), else the default. A recipient given a variant is stored
rendered (its copy fixed at launch, like every value), so sync needs no change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

LOCALE_TAG = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$"
_SEPARATOR = re.compile(r"[_\s]+")


def normalized(tag: str) -> str:
    """A locale tag as the variants are looked up: lower case, ``-`` separated."""
    return _SEPARATOR.sub("-", tag.strip()).lower()


def variant_for(locales: Mapping[str, Any], locale: object) -> str | None:
    """The key of ``locales`` to use for ``locale`` (exact, then its language), or None
    for the default."""
    if not locales or not isinstance(locale, str) or not locale.strip():
        return None
    by_tag = {normalized(key): key for key in locales}
    tag = normalized(locale)
    while tag:
        if tag in by_tag:
            return by_tag[tag]
        tag = tag.rpartition("-")[0]
    return None


def recipient_locale(personalization: Mapping[str, Any], attributes: Mapping[str, Any]) -> object:
    """The recipient's ``locale``: the send's personalization first, then the contact's
    attributes; the name matched case-insensitively."""
    for source in (personalization, attributes):
        for name, value in source.items() if source else ():
            if isinstance(name, str) and name.casefold() == "locale":
                return value
    return None


def localized(kind: str, body: Mapping[str, Any], variant: str | None) -> dict[str, Any]:
    """The body a recipient of ``variant`` gets (None: the default), without ``locales``."""
    result = {key: value for key, value in body.items() if key != "locales"}
    fields = (body.get("locales") or {}).get(variant) if variant is not None else None
    if not isinstance(fields, dict):
        return result
    if kind == "inbox":
        return {**result, **fields}
    payload = result.get("payload")
    if isinstance(payload, dict):
        result["payload"] = {
            platform: _with_fields(template, fields) for platform, template in payload.items()
        }
    return result


def _with_fields(template: Any, fields: dict[str, Any]) -> Any:
    if not isinstance(template, dict):
        return template
    found = template.get("content")
    content: dict[str, Any] = found if isinstance(found, dict) else {}
    merged = {**content, **fields}
    action, override = content.get("action"), fields.get("action")
    if isinstance(action, dict) and isinstance(override, dict):
        merged["action"] = {**action, **override}
    return {**template, "content": merged}
