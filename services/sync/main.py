"""Sync wiring: settings, PostgreSQL pool, Redis, device routes, ops endpoints, and the
processes that serve them (one, or N sharing a port)."""

from __future__ import annotations

import ctypes
import gc
import os
import resource
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI, Response
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from services.sync import changes, inbox_routes, repository, routes
from services.sync.auth import AppCache
from services.sync.errors import install_error_handlers, render_refusal
from services.sync.fast_path import DeviceApi
from services.sync.stream import Hub, UnreadCounts
from shared.db import create_pool
from shared.device_limits import DeviceLimits
from shared.http_limits import InputGuard
from shared.kafka import durable_producer
from shared.observability import ReadinessCheck, configure_logging
from shared.ops import (
    NO_OTEL,
    GracefulServer,
    install_ops_routes,
    on_exit,
    serve_http,
    server_config,
)
from shared.redis_client import connect as connect_redis
from shared.redis_keys import InboxVersions
from shared.settings import SyncSettings

_PR_SET_PDEATHSIG = 1  # prctl(2)


def create_app(settings: SyncSettings | None = None) -> FastAPI:
    settings = settings or SyncSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await create_pool(
            settings.database_url,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            server_settings=repository.POOL_SETTINGS,
        )
        app.state.redis = connect_redis(settings.redis_url)
        app.state.versions = InboxVersions(app.state.redis)
        app.state.apps = AppCache(app.state.pool)
        app.state.device_limits = DeviceLimits(app.state.redis)
        app.state.device_requests_per_minute = settings.device_requests_per_minute
        app.state.producer = durable_producer(settings.kafka_bootstrap, "pigeonhole-sync")
        await app.state.producer.start()
        app.state.unread_counts = UnreadCounts(app.state.pool)
        app.state.stream_hub = Hub(app.state.redis)
        app.state.stream_hub.start()
        app.state.max_streams = settings.max_streams
        on_exit(app.state.stream_hub.close)
        # What start-up made (modules, routes, clients) lives as long as the process: keep
        # it out of the collector's scans, which otherwise walk all of it again and again.
        gc.freeze()
        try:
            yield
        finally:
            await app.state.stream_hub.stop()
            await app.state.producer.stop()
            await app.state.redis.aclose()
            await app.state.pool.close()

    app = DeviceApi(  # answers the phone home itself (services/sync/fast_path.py)
        title="Pigeonhole device API",
        version="0.1.0",
        lifespan=lifespan,
        telemetry=NO_OTEL,
    )

    install_error_handlers(app)
    app.include_router(routes.router)
    app.include_router(changes.router)
    app.include_router(inbox_routes.router)
    app.add_middleware(InputGuard, max_body_bytes=settings.max_body_bytes, render=render_refusal)
    # Web pages on the customer's own origins call the device API; credentials travel in
    # headers (never cookies), so any origin may call it.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "POST", "PUT", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "X-App-Key", "Last-Event-ID"],
        expose_headers=["Retry-After"],  # the web SDK waits as long as a 429/503 says
        max_age=3600,
    )

    def checks() -> dict[str, ReadinessCheck]:
        async def postgres() -> None:
            await app.state.pool.fetchval("SELECT 1")

        async def redis() -> None:
            await app.state.redis.ping()

        return {"postgres": postgres, "redis": redis}

    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        _sum_metrics_of_all_processes(app)  # before install_ops_routes: the first route wins
    install_ops_routes(app, "sync", checks)
    return app


def _sum_metrics_of_all_processes(app: FastAPI) -> None:
    """/metrics as the sum over the worker processes (prometheus-client multiprocess)."""

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def main(workers: int = 1) -> None:
    settings = SyncSettings()
    configure_logging("sync", settings.log_level)
    _raise_open_files_limit(settings.http_max_connections + 1024)
    app = create_app(settings)
    if workers == 1:
        serve_http(app, settings)
    else:
        serve_workers(app, settings, workers)


def serve_workers(app: FastAPI, settings: SyncSettings, workers: int) -> None:
    """``workers`` forked processes accepting on one listening socket, each serving ``app``
    as ``shared.ops.serve_http`` does (same limits and time-outs). SIGTERM or SIGINT is
    passed on to them and they finish in-flight requests; if one dies, the others are
    stopped and the parent exits non-zero for the supervisor to start them again."""
    listener = socket.create_server((settings.host, settings.port), backlog=settings.http_backlog)
    listener.set_inheritable(True)
    gc.freeze()  # what the children share stays shared (copy-on-write) until they change it
    children = [_fork_worker(app, settings, listener) for _ in range(workers)]
    listener.close()

    def stop(signum: int, _: object) -> None:
        for pid in children:
            with suppress(ProcessLookupError):  # already gone
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failed = False
    for _ in children:
        _, status = os.wait()
        if os.waitstatus_to_exitcode(status) != 0 and not failed:
            failed = True
            stop(signal.SIGTERM, None)
    sys.exit(1 if failed else 0)


def _fork_worker(app: FastAPI, settings: SyncSettings, listener: socket.socket) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the server installs its own
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _stop_with_parent()
        GracefulServer(server_config(app, settings)).run(sockets=[listener])
        code = 0
    finally:
        os._exit(code)  # never back into the parent's loop


def _raise_open_files_limit(wanted: int) -> None:
    """Let the process hold ``wanted`` descriptors (each open stream is one), up to the
    hard limit the system gives it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _stop_with_parent() -> None:
    """SIGTERM this process when its parent dies, even by SIGKILL (Linux), so no worker
    is left holding the port."""
    with suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the parent died before that took effect
        os._exit(1)
