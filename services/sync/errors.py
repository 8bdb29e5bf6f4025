"""Errors of the device API, in FastAPI's own shape: ``{"detail": "..."}``, and for a bad
field ``{"detail": [{"loc": ["body", "events", 0, "at"], "msg": "...", "type": "..."}]}``.
What is not a 4xx (a dependency down, a bug) is decided by ``shared.http_errors``."""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from shared.http_errors import EXPECTED, answer_for


def render_refusal(status: int, message: str | None, fields: dict[str, str], where: str) -> bytes:
    """The body of a request ``shared.http_limits.InputGuard`` refuses."""
    if message is not None:
        return orjson.dumps({"detail": message})
    detail = [
        {"loc": [where, *([] if path == where else path.split("."))], "msg": problem,
         "type": "value_error"}
        for path, problem in fields.items()
    ]  # fmt: skip
    return orjson.dumps({"detail": detail})


def install_error_handlers(app: FastAPI) -> None:
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        route = getattr(request.scope.get("route"), "path", request.url.path)
        answer = answer_for(exc, f"{request.method} {route}")
        return JSONResponse(
            {"detail": answer.message}, status_code=answer.status, headers=answer.headers
        )

    for kind in EXPECTED:
        app.add_exception_handler(kind, _unexpected)

    @app.exception_handler(ClientDisconnect)
    async def _gone(_: Request, __: ClientDisconnect) -> Response:
        return Response(status_code=400)  # nobody reads it: the client has left
