"""Sizes a client controls inside a request body, and their checks (pydantic validators).

The limits are part of the API (docs/api.md): they keep every stored document small enough
to load per recipient at delivery, and every send small enough for its Kafka batches.
Each check also refuses what PostgreSQL cannot store (``shared.http_limits``), so a body
that arrives another way than HTTP — an NDJSON line, a Kafka event — is held to the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from shared.http_limits import describe_size, json_problems, storable_text

MAX_RECIPIENTS = 10_000  # contacts per POST /channels/push/sends
MAX_KEYS = 100  # keys of a personalization map, formulas, subscriptions
MAX_KEY_CHARS = 100
MAX_VALUE_BYTES = 2048  # one personalization value, as JSON
MAX_FORMULA_CHARS = 2000
MAX_ATTRIBUTES_BYTES = 64 * 1024  # a contact's attribute document, as JSON
# the merged document as stored (migration 0012's CHECK contacts_attributes_size)
MAX_STORED_ATTRIBUTES_BYTES = 128 * 1024
STORED_ATTRIBUTES_CONSTRAINT = "contacts_attributes_size"
MAX_ATTRIBUTES_DEPTH = 8


def text(value: str) -> str:
    if not storable_text(value):
        raise ValueError("must be valid Unicode text without NUL characters")
    return value


def _storable(document: Mapping[str, Any]) -> None:
    problems = json_problems(document)
    if problems:
        path, problem = next(iter(problems.items()))
        raise ValueError(f"{path}: {problem}")


def _keys(document: Mapping[str, Any]) -> None:
    if len(document) > MAX_KEYS:
        raise ValueError(f"at most {MAX_KEYS} keys, got {len(document)}")
    for key in document:
        if not 0 < len(key) <= MAX_KEY_CHARS:
            raise ValueError(f"key {key[:20]!r}: keys are 1..{MAX_KEY_CHARS} characters")


def personalization(values: dict[str, Any]) -> dict[str, Any]:
    _storable(values)
    _keys(values)
    for key, value in values.items():
        if len(orjson.dumps(value)) > MAX_VALUE_BYTES:
            limit = describe_size(MAX_VALUE_BYTES)
            raise ValueError(f"{key}: a personalization value is at most {limit} as JSON")
    return values


def formulas(values: dict[str, str]) -> dict[str, str]:
    _storable(values)
    _keys(values)
    for key, source in values.items():
        if len(source) > MAX_FORMULA_CHARS:
            raise ValueError(f"{key}: a formula is at most {MAX_FORMULA_CHARS} characters")
    return values


def subscriptions(values: dict[str, bool]) -> dict[str, bool]:
    _storable(values)
    _keys(values)
    return values


def attributes(document: dict[str, Any]) -> dict[str, Any]:
    _storable(document)
    if _depth(document) > MAX_ATTRIBUTES_DEPTH:
        raise ValueError(f"attributes nest at most {MAX_ATTRIBUTES_DEPTH} levels deep")
    if len(orjson.dumps(document)) > MAX_ATTRIBUTES_BYTES:
        limit = describe_size(MAX_ATTRIBUTES_BYTES)
        raise ValueError(f"the attribute document is at most {limit} as JSON")
    return document


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0
