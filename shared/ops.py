"""/healthz, /readyz, /metrics and request metrics for the services served over ASGI."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.http_timeouts import TimedHttpToolsProtocol
from shared.observability import ReadinessCheck, run_checks
from shared.settings import HttpServerSettings

# FastAPI's built-in OpenTelemetry spans, metrics and logs are switched off: Pigeonhole
# exports Prometheus metrics itself, and on the phone home the per-request look-ups of the
# global OpenTelemetry providers cost more than the endpoint does.
NO_OTEL: Any = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}

HTTP_REQUESTS = Counter(
    "pigeonhole_http_requests_total",
    "HTTP requests answered, by route template and status class",
    ["service", "method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "pigeonhole_http_request_seconds",
    "HTTP request latency by route template",
    ["service", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


def install_ops_routes(
    app: FastAPI, service: str, checks: Callable[[], dict[str, ReadinessCheck]]
) -> None:
    """Add the operability endpoints and a middleware that times every request.

    ``checks`` is called per request so it can read clients created in the lifespan.
    """

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        ready, results = await run_checks(checks())
        body = {"status": "ready" if ready else "not ready", "service": service, "checks": results}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(RequestMetrics, service=service)


class RequestMetrics:
    """Times every request and counts it by route template and status class. A plain ASGI
    middleware: Starlette's BaseHTTPMiddleware costs more than the phone home itself."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app, self.service = app, service
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            key = (scope["method"], template, f"{status // 100}xx")
            children = self._children.get(key)
            if children is None:  # label look-ups are cached: they are not free
                children = (
                    HTTP_LATENCY.labels(self.service, template),
                    HTTP_REQUESTS.labels(self.service, *key),
                )
                self._children[key] = children
            children[0].observe(time.perf_counter() - started)
            children[1].inc()


_EXIT_HOOKS: list[Callable[[], None]] = []


def on_exit(hook: Callable[[], None]) -> None:
    """Call ``hook`` when the server is told to stop, before it waits for the open
    connections to finish: what never finishes by itself (a live stream) ends there."""
    _EXIT_HOOKS.append(hook)


class GracefulServer(uvicorn.Server):
    """uvicorn that, on SIGTERM or SIGINT, finishes in-flight requests, runs the lifespan
    shutdown and exits 0. (uvicorn's own handler re-raises the signal once it is done, so
    a clean stop would be reported as a kill.) With ``own_signals=False`` the caller
    handles signals and sets ``should_exit`` itself."""

    def __init__(self, config: uvicorn.Config, *, own_signals: bool = True) -> None:
        super().__init__(config)
        self.own_signals = own_signals

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        for hook in _EXIT_HOOKS:
            hook()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if self.own_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.handle_exit, sig, None)
        yield


def server_config(app: FastAPI, settings: HttpServerSettings, **bind: Any) -> uvicorn.Config:
    """The uvicorn server every HTTP service runs: slow and idle clients are timed out
    (``shared.http_timeouts``) and connections beyond ``http_max_connections`` are
    answered 503 at once, so no client can hold the process. ``bind``: host, port and
    backlog, left out when the caller hands the server a socket of its own."""
    protocol = TimedHttpToolsProtocol.with_limits(
        settings.http_header_timeout_seconds,
        settings.http_body_timeout_seconds,
        settings.http_max_header_bytes,
    )
    return uvicorn.Config(
        app,
        http=protocol,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        timeout_keep_alive=max(1, round(settings.http_keepalive_seconds)),
        limit_concurrency=settings.http_max_connections,
        **bind,
    )


def serve_http(app: FastAPI, settings: HttpServerSettings) -> None:
    """Run an HTTP service until SIGTERM; no uvicorn access log (metrics cover it)."""
    config = server_config(
        app, settings, host=settings.host, port=settings.port, backlog=settings.http_backlog
    )
    GracefulServer(config).run()  # on uvloop when installed (uvicorn's loop="auto")
