"""The generic input checks, the last-resort answers and the body-size guard, without a stack."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
import pytest
import redis.exceptions
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from services.publisher import limits
from services.publisher.contacts.models import ContactLine, UpsertContact
from services.publisher.contacts.routes import _at_most
from services.publisher.errors import ApiError
from shared.http_errors import answer_for
from shared.http_limits import InputGuard, body_problems, json_problems, url_problems

FINITE = "number out of range: it must be finite"
BITS = "integer out of range: it must fit in 64 bits"
TEXT = "must be valid Unicode text without NUL characters"


@pytest.mark.parametrize(
    ("document", "path", "words"),
    [
        ({"a": "x\x00y"}, "a", "NUL"),
        ({"a": ["ok", "\ud800"]}, "a.1", "NUL"),
        ({"ke\x00y": 1}, "ke\x00y", "key"),
        ({"a": {"b": 2**64}}, "a.b", "64 bits"),
        ({"a": -(2**63) - 1}, "a", "64 bits"),
        ({"a": float("nan")}, "a", "finite"),
        ({"a": float("inf")}, "a", "finite"),
    ],
)
def test_json_problems_names_the_path(document: Any, path: str, words: str) -> None:
    problems = json_problems(document)
    assert list(problems) == [path]
    assert words in problems[path]


def test_json_problems_accepts_what_postgres_stores() -> None:
    document: dict[str, Any] = {
        "a": [2**63 - 1, -(2**63), 1.5, True, None, "é ☃ \U0001f600", {"b": []}]
    }
    assert json_problems(document) == {}


@pytest.mark.parametrize(
    ("body", "problems"),
    [
        (b"[" * 10_000 + b"]" * 10_000, {"body": "nested deeper than 32 levels"}),
        (b"[" * 40 + b"]" * 40, {"0." * 31 + "0": "nested deeper than 32 levels"}),
        (b'{"a": NaN, "b": [-Infinity]}', {"a": FINITE, "b.0": FINITE}),
        (b'{"a": 1e400}', {"a": FINITE}),
        (b'{"a": 1E-2, "b": 12345678901234567890}', {"b": BITS}),
        (b'{"a": "\\ud800"}', {"a": TEXT}),
        (b'{"a": "\xed\xa0\x80"}', {"a": TEXT}),  # a surrogate as raw UTF-8 bytes
        ('{"a": "x"}'.encode("utf-16"), {}),
        ('{"a": "\\u0000"}'.encode("utf-16"), {"a": TEXT}),
        (b"{not json", {}),
        (b'{"a": "plain", "b": [1, 2.5, true, null], "c": {"d": "e"}}', {}),
    ],
)
def test_body_problems(body: bytes, problems: dict[str, str]) -> None:
    assert body_problems(body) == problems


def test_url_problems_finds_nul_in_path_and_query() -> None:
    assert url_problems({"path": "/a\x00b", "query_string": b""}) is not None
    where, bad = url_problems({"path": "/a", "query_string": b"tag=%00&x=1"}) or ("", {})
    assert (where, list(bad)) == ("query", ["tag"])
    assert url_problems({"path": "/a", "query_string": b"tag=%C3%A9"}) is None


async def _make_dependency_error(kind: str) -> BaseException:
    if kind == "postgres":
        try:
            await asyncpg.connect("postgresql://u:p@127.0.0.1:1/x", timeout=5)
        except OSError as exc:
            return exc
        raise AssertionError("port 1 answered")
    return redis.exceptions.ConnectionError("Connection refused")


@pytest.mark.parametrize("kind", ["postgres", "redis"])
async def test_a_dependency_down_is_503_with_retry_after(kind: str) -> None:
    answer = answer_for(await _make_dependency_error(kind))
    assert answer.status == 503
    assert answer.headers == {"Retry-After": "5"}


def test_a_database_data_error_is_400_and_anything_else_500() -> None:
    data_error = asyncpg.exceptions.NumericValueOutOfRangeError("value out of range")
    assert answer_for(data_error).status == 400
    assert "value out of range" in answer_for(data_error).message
    assert answer_for(OSError("disk on fire")).status == 500


async def _echo(scope: Scope, receive: Receive, send: Send) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _render(status: int, message: str | None, fields: dict[str, str], where: str) -> bytes:
    return json.dumps({"message": message, "fields": fields, "where": where}).encode()


@pytest.fixture
async def guarded() -> Any:
    guard = InputGuard(
        _echo, max_body_bytes=100, render=_render, streamed=frozenset({("POST", "/stream")})
    )
    transport = httpx.ASGITransport(app=guard)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


async def test_the_guard_hands_good_bodies_on_unchanged(guarded: httpx.AsyncClient) -> None:
    response = await guarded.post("/x", content=b'{"a": 1}')
    assert (response.status_code, response.content) == (200, b'{"a": 1}')


async def test_the_guard_refuses_big_bodies_but_not_streamed_routes(
    guarded: httpx.AsyncClient,
) -> None:
    response = await guarded.post("/x", content=b"x" * 101)
    assert response.status_code == 413
    assert "100 bytes" in response.json()["message"]
    assert (await guarded.post("/stream", content=b"x" * 1000)).status_code == 200


async def test_the_guard_refuses_unstorable_json_naming_the_path(
    guarded: httpx.AsyncClient,
) -> None:
    response = await guarded.post("/x", content=b'{"a": ["\\u0000"]}')
    assert response.status_code == 400
    assert response.json()["fields"] == {"a.0": limits_message()}
    other = await guarded.post("/x", content=b"a\x00", headers={"content-type": "text/plain"})
    assert other.status_code == 200  # not JSON: the route's own parser decides


def limits_message() -> str:
    return "must be valid Unicode text without NUL characters"


def test_model_limits_name_the_field() -> None:
    with pytest.raises(ValidationError, match="at most 100 keys"):
        UpsertContact(subscriptions={f"s{i}": True for i in range(limits.MAX_KEYS + 1)})
    with pytest.raises(ValidationError, match="64 bits"):
        ContactLine.model_validate_json(
            '{"contactId": 1, "attributes": {"a": 1e0, "b": ' + str(2**64) + "}}"
        )
    with pytest.raises(ValidationError, match="NUL"):
        ContactLine.model_validate_json('{"contactId": "a\\u0000"}')
    with pytest.raises(ValidationError, match="at most 64 KiB"):
        UpsertContact(attributes={"a": "x" * limits.MAX_ATTRIBUTES_BYTES})


async def test_an_import_over_its_line_limit_is_refused() -> None:
    async def body() -> Any:
        for _ in range(3):
            yield b'{"contactId": 1}\n{"contactId": 2}\n'

    with pytest.raises(ApiError) as refused:
        async for _ in _at_most(body(), max_lines=5):
            pass
    assert refused.value.status == 413
