"""The "nothing new" phone home, answered before FastAPI.

Most phone homes find nothing new. Those are answered here from one Redis GET, without
FastAPI's routing, dependency injection and validation, which cost several times the
work itself. Anything else — no cursor, a changed inbox, a body or credentials the full
handler would refuse — goes on to the full handler unchanged, which gives the proper
answer or error. Both paths produce the same "nothing new" body.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.sync import metrics
from services.sync.auth import Unauthorized, verify
from services.sync.phone_home import current_version
from shared.http_errors import EXPECTED

PLATFORMS = frozenset({"gcm", "apns", "web"})
MAX_BODY = 4096
ROUTE = SimpleNamespace(path="/v1/sync")  # the metrics label of the route it stands in for


class NothingNewFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/v1/sync":
            await self.app(scope, receive, send)
            return
        body, complete = await _read(receive)
        try:
            answer = await self._answer(scope, body) if complete else None
        except EXPECTED:
            # PostgreSQL or Redis down (or worse): the full handler meets the same failure
            # and answers it as every other route does (503 with Retry-After)
            answer = None
        if answer is None:
            await self.app(scope, _replay(body, receive, complete), send)
            return
        scope["route"] = ROUTE
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(answer)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": answer})

    async def _answer(self, scope: Scope, body: bytes) -> bytes | None:
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(request, dict) or set(request) != {"platform", "cursor"}:
            return None
        platform, cursor = request["platform"], request["cursor"]
        if not isinstance(platform, str) or platform not in PLATFORMS:
            return None
        if not isinstance(cursor, str) or len(cursor) > 64:
            return None
        headers = dict(scope["headers"])
        state = scope["app"].state
        try:
            device = await verify(
                state.apps,
                _text(headers.get(b"x-app-key")),
                _text(headers.get(b"authorization")),
            )
        except Unauthorized:
            return None
        version = await current_version(state.redis, device.contact_id)
        current = f"{platform}.{version}"
        if cursor != current:
            return None
        metrics.PHONE_HOMES.labels("nothing_new", platform).inc()
        return orjson.dumps(
            {"changed": False, "cursor": current,
             "nextSyncAfterSeconds": device.app.next_sync_after_seconds}
        )  # fmt: skip


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


async def _read(receive: Receive) -> tuple[bytes, bool]:
    """The body, up to MAX_BODY bytes; (what was read, whether that is all of it)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
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
        message: Any = await receive()
        return message  # type: ignore[no-any-return]

    return replay
