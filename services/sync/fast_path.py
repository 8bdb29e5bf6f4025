"""The phone home (``POST /v1/sync``), answered in front of FastAPI; so is the live stream
(``GET /v1/stream``, services/sync/stream.py).

Every device phones home every minute or so, and FastAPI's routing, dependency
injection, validation and middleware stack cost several times the work itself. So
``DeviceApi`` answers a phone home it can fully handle — a small JSON body of the
expected shape, credentials that verify, a device within its rate limit — itself, from
``phone_home.sync_body``, with precomputed headers, both when nothing is new and when
messages are waiting. Anything else (no or another content type, a body with other
fields, too large or with a value ``InputGuard`` refuses, bad credentials, a device over
its rate limit, a query string) goes through FastAPI unchanged, which gives the same
answer or error as before. So does a phone home that meets
PostgreSQL or Redis down: the full handler meets the same failure and answers it as
every route does (503 with Retry-After).

What the FastAPI stack adds to a phone home is added here too: the request metrics of
``shared.ops.RequestMetrics`` and the headers ``CORSMiddleware`` adds to a simple
request (``Vary: Origin`` always, ``Access-Control-Allow-Origin: *`` when there is an
``Origin``).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from services.sync import stream
from services.sync.auth import AppCache, Device, Unauthorized, retry_after, verify
from services.sync.phone_home import sync_body
from shared.http_errors import EXPECTED
from shared.http_limits import body_problems
from shared.ops import HTTP_LATENCY, HTTP_REQUESTS

PATH = "/v1/sync"
PLATFORMS = frozenset({"gcm", "apns", "web"})
MAX_CURSOR = 64  # phone_home.SyncRequest's limit
MAX_BODY = 4096  # a phone home is under 100 bytes; larger ones take the full path
FIELDS = frozenset({"platform", "cursor"})
_WANTED = frozenset({b"x-app-key", b"authorization", b"content-type", b"origin"})
_TYPE = [(b"content-type", b"application/json")]
_VARY = [(b"vary", b"Origin")]
_CORS = [(b"access-control-allow-origin", b"*"), *_VARY]


class DeviceApi(FastAPI):
    """The device API's FastAPI app, with the phone home answered before FastAPI sees it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._latency = HTTP_LATENCY.labels("sync", PATH)
        self._answered = HTTP_REQUESTS.labels("sync", "POST", PATH, "2xx")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == stream.PATH and scope["method"] == "GET":
            await stream.handle(self.state, scope, receive, send)
            return
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "POST"
            or scope.get("query_string")
        ):
            await super().__call__(scope, receive, send)
            return
        started = time.perf_counter()
        body, complete = await _read(receive)
        answer = None
        if complete:
            headers = _headers(scope)
            try:
                answer = await self._answer(headers, body)
            except EXPECTED:
                answer = None  # the full handler answers the failure (see the docstring)
        if answer is None:
            await super().__call__(scope, _replay(body, receive, complete), send)
            return
        cors = _CORS if b"origin" in headers else _VARY
        length = [(b"content-length", b"%d" % len(answer))]
        await send({"type": "http.response.start", "status": 200,
                    "headers": _TYPE + length + cors})  # fmt: skip
        await send({"type": "http.response.body", "body": answer})
        self._latency.observe(time.perf_counter() - started)
        self._answered.inc()

    async def _answer(self, headers: dict[bytes, bytes], body: bytes) -> bytes | None:
        """The answer's body, or None for the full handler to answer."""
        request = _phone_home(headers, body)
        if request is None:
            return None
        platform, cursor = request
        state = self.state
        device = await _device(state.apps, headers)
        if device is None or await retry_after(state, device) is not None:
            return None  # the full handler answers 401, or 429 (counting the device again)
        return await sync_body(state.pool, state.versions, device, platform, cursor)


def _phone_home(headers: dict[bytes, bytes], body: bytes) -> tuple[Any, str | None] | None:
    """(platform, cursor) of a body the full handler would accept as it is, else None."""
    content_type = headers.get(b"content-type")
    if content_type is None or content_type.split(b";")[0].strip().lower() != b"application/json":
        return None
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(request, dict) or "platform" not in request or not request.keys() <= FIELDS:
        return None
    platform, cursor = request["platform"], request.get("cursor")
    if not isinstance(platform, str) or platform not in PLATFORMS:
        return None
    if cursor is not None and (not isinstance(cursor, str) or len(cursor) > MAX_CURSOR):
        return None
    if body_problems(body):  # a NUL or a lone surrogate in the cursor: InputGuard's 400
        return None
    return platform, cursor


async def _device(apps: AppCache, headers: dict[bytes, bytes]) -> Device | None:
    app_key, authorization = headers.get(b"x-app-key"), headers.get(b"authorization")
    try:
        return await verify(
            apps,
            app_key.decode("latin-1") if app_key is not None else None,
            authorization.decode("latin-1") if authorization is not None else None,
        )
    except Unauthorized:
        return None  # the full handler answers 401 saying why


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The request headers the phone home reads, each its first value (as Starlette's)."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in _WANTED and name not in found:
            found[name] = value
    return found


async def _read(receive: Receive) -> tuple[bytes, bool]:
    """The body, up to MAX_BODY bytes; (what was read, whether that is all of it)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client left: the full path sees it too
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > MAX_BODY:
            return b"".join(chunks), False


def _replay(body: bytes, receive: Receive, complete: bool) -> Receive:
    """A receive that hands the already-read body to the full handler, then the rest."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": not complete}
        message: Message = await receive()
        return message

    return replay
