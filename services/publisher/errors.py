"""The seed's response envelope, and the mapping of every error onto it.

Every error answers ``{"meta": {..., "generalErrors": [...], "fieldErrors": {...}}, "data": null}``
with a 4xx; ``fieldErrors`` names each bad field by its JSON path (``payload.gcm.maxViews``).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from shared.http_errors import EXPECTED, answer_for

log = logging.getLogger(__name__)


def envelope(
    data: Any = None,
    *,
    general_errors: list[str] | None = None,
    field_errors: dict[str, list[str]] | None = None,
    next_page_url: str | None = None,
    links: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    return {
        "meta": {
            "attributes": {},
            "generalErrors": general_errors or [],
            "fieldErrors": field_errors or {},
            "links": links or [],
            "nextPageUrl": next_page_url,
        },
        "data": data,
    }


class ApiError(Exception):
    """A request the API refuses; raised by routes and use cases, rendered as the envelope."""

    def __init__(
        self,
        status: int,
        message: str | None = None,
        *,
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or next(iter((fields or {}).values()), "error"))
        self.status = status
        self.general = [message] if message else []
        self.fields = {k: [v] for k, v in (fields or {}).items()}
        self.headers = headers


def field_error(field: str, message: str, status: int = 400) -> ApiError:
    return ApiError(status, fields={field: message})


def _path(loc: tuple[Any, ...]) -> str:
    # Only the first element says where the input came from: a body field may itself be
    # named "query" (POST /contact-sources).
    if loc and loc[0] in ("body", "query", "path", "header"):
        loc = loc[1:]
    return ".".join(str(p) for p in loc) or "body"


def render_refusal(status: int, message: str | None, fields: dict[str, str], _: str) -> bytes:
    """The envelope of a request ``shared.http_limits.InputGuard`` refuses."""
    general = [message] if message else []
    return orjson.dumps(
        envelope(general_errors=general, field_errors={k: [v] for k, v in fields.items()})
    )


def _route(request: Request) -> str:
    return f"{request.method} {getattr(request.scope.get('route'), 'path', request.url.path)}"


def install_error_handlers(app: FastAPI) -> None:
    """The envelope for every error; see ``shared.http_errors`` for what is not a 4xx."""
    _install_fault_handlers(app)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        body = envelope(general_errors=exc.general, field_errors=exc.fields)
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields: dict[str, list[str]] = {}
        general: list[str] = []
        for err in exc.errors():
            loc = tuple(err.get("loc", ()))
            message = str(err.get("msg", "invalid"))
            if err.get("type") == "json_invalid":
                general.append(f"the request body is not valid JSON: {message}")
                continue
            fields.setdefault(_path(loc), []).append(message)
        return JSONResponse(envelope(general_errors=general, field_errors=fields), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            envelope(general_errors=[str(exc.detail)]),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )


def _install_fault_handlers(app: FastAPI) -> None:
    """A dependency down (503), a database data error (400), a client gone, a bug (500)."""

    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        answer = answer_for(exc, _route(request))
        body = envelope(general_errors=[answer.message])
        return JSONResponse(body, status_code=answer.status, headers=answer.headers)

    for kind in EXPECTED:
        app.add_exception_handler(kind, _unexpected)

    @app.exception_handler(ClientDisconnect)
    async def _gone(_: Request, __: ClientDisconnect) -> Response:
        return Response(status_code=400)  # nobody reads it: the client has left

    @app.exception_handler(Exception)
    async def _bug(_: Request, __: Exception) -> JSONResponse:
        # Starlette re-raises after this answer, so the server logs the traceback.
        return JSONResponse(envelope(general_errors=["internal error"]), status_code=500)
