"""Input every HTTP service refuses before a handler sees it: bodies over their size limit
(413), and anything PostgreSQL or the JSON encoder cannot hold, wherever it hides.

One generic check instead of per-field patches: the URL path and every query parameter
must be free of NUL characters, and a JSON body is decoded once more here and walked in
full — every key and every value, at any depth — so a NUL or a lone surrogate in a string,
an integer beyond 64 bits, ``NaN``/``Infinity`` (or a number so large it becomes one) or a
document nested deeper than ``MAX_JSON_DEPTH`` is a 400 naming its JSON path. The body is
then handed on unchanged. Routes that stream their body (uploads, NDJSON imports) are
exempt from the body limit and enforce their own limits while they read.
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

BIGINT_MAX = 2**63 - 1  # PostgreSQL bigint, and the widest integer the JSON encoder writes
_INT_MIN = -(2**63)
MAX_JSON_DEPTH = 32
NUL_OR_SURROGATE = "must be valid Unicode text without NUL characters"

# (status, general message, {field: message}, where the fields are: "body", "query" or "path")
Render = Callable[[int, str | None, dict[str, str], str], bytes]


def json_problems(document: Any) -> dict[str, str]:
    """Each value of a decoded JSON document that cannot be stored, by JSON path ({} if
    none): NUL or lone surrogates in strings or keys, integers beyond 64 bits, non-finite
    numbers, nesting deeper than ``MAX_JSON_DEPTH``. Only the first few are reported."""
    problems: dict[str, str] = {}
    for path, message in _walk(document, "", 0):
        problems[path or "body"] = message
        if len(problems) >= 10:
            break
    return problems


def _walk(value: Any, path: str, depth: int) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict | list):
        if depth >= MAX_JSON_DEPTH:
            yield path, f"nested deeper than {MAX_JSON_DEPTH} levels"
            return
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            child = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and not storable_text(key):
                yield child, f"key {NUL_OR_SURROGATE}"
            yield from _walk(item, child, depth + 1)
        return
    problem = _scalar_problem(value)
    if problem:
        yield path, problem


def _scalar_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return None if storable_text(value) else NUL_OR_SURROGATE
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and not _INT_MIN <= value <= BIGINT_MAX:
        return "integer out of range: it must fit in 64 bits"
    if isinstance(value, float) and not math.isfinite(value):
        return "number out of range: it must be finite"
    return None


def storable_text(text: str) -> bool:
    """PostgreSQL text holds neither NUL nor lone surrogates (which JSON can spell)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# Every problem needs one of these in the raw body: a \u escape (NUL, surrogates), a raw
# UTF-8 surrogate or NUL byte (the JSON decoder lets surrogates pass; NUL means UTF-16/32),
# NaN or Infinity, an exponent (1e400), 19 digits (beyond 63 bits), or many brackets.
_SUSPECT = re.compile(rb"\\u|\xed[\xa0-\xbf]|\x00|NaN|Infinity|\d[eE]|\d{19}")


def _suspect(body: bytes) -> bool:
    """False when ``body`` cannot hold a problem, so the common request is not decoded twice."""
    brackets = body.count(b"[") + body.count(b"{")
    return brackets >= MAX_JSON_DEPTH or _SUSPECT.search(body) is not None


def body_problems(body: bytes) -> dict[str, str]:
    """The problems of a JSON body by path; {} when it has none, or when it is not JSON at
    all (the framework then answers that it is not valid JSON)."""
    if not _suspect(body):
        return {}
    try:
        document = json.loads(body)  # as the framework decodes it: NaN becomes a float
    except RecursionError:
        return {"body": f"nested deeper than {MAX_JSON_DEPTH} levels"}
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        return {}
    return json_problems(document)


def url_problems(scope: Scope) -> tuple[str, dict[str, str]] | None:
    """("path" or "query", {name: problem}) for a NUL in the decoded path or query."""
    if "\x00" in scope["path"]:
        return "path", {"path": "the URL path must not contain NUL characters"}
    query = scope.get("query_string", b"")
    if b"%00" not in query and b"\x00" not in query:
        return None
    pairs = urllib.parse.parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    bad = {name or "query": NUL_OR_SURROGATE for name, value in pairs if "\x00" in name + value}
    return ("query", bad) if bad else None


def describe_size(size: int) -> str:
    if size >= 2**20:
        return f"{size / 2**20:g} MiB"
    return f"{size / 1024:g} KiB" if size >= 1024 else f"{size} bytes"


def _is_json(headers: dict[bytes, bytes]) -> bool:
    # FastAPI parses a body without a content type as JSON too.
    content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    return not content_type or content_type.endswith((b"/json", b"+json"))


class InputGuard:
    """ASGI middleware: the URL checks, the body size limit and the JSON body checks.

    ``streamed`` maps (method, path) of routes that read their own body to skip; ``render``
    builds the service's error body.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        render: Render,
        streamed: frozenset[tuple[str, str]] = frozenset(),
    ) -> None:
        self.app, self.max_body, self.render, self.streamed = app, max_body_bytes, render, streamed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = url_problems(scope)
        if refused is not None:
            await self._answer(send, 400, None, refused[1], refused[0])
            return
        if (scope["method"], scope["path"]) in self.streamed:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body:
            await self._too_large(send)
            return
        body = await self._read(receive)
        if body is None:
            await self._too_large(send)
            return
        problems = body_problems(body) if body and _is_json(headers) else {}
        if problems:
            await self._answer(send, 400, None, problems, "body")
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body, or None once it passes the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _too_large(self, send: Send) -> None:
        message = f"the request body is larger than the limit of {describe_size(self.max_body)}"
        await self._answer(send, 413, message, {}, "body")

    async def _answer(
        self, send: Send, status: int, message: str | None, fields: dict[str, str], where: str
    ) -> None:
        # The server discards whatever is left of the body, so the client reads this answer
        # once it has sent all of it, and the connection can be reused.
        body = self.render(status, message, fields, where)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the already-read body on, then passes the rest through."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        message: Message = await receive()
        return message

    return replay
