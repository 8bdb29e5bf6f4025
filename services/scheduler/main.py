"""Scheduler wiring: pool, producer, the poll loop woken by NOTIFY, the ops endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket

import asyncpg
import uvicorn
from fastapi import FastAPI

from services.scheduler import metrics
from services.scheduler.purge import purge_periodically
from services.scheduler.runner import JobRunner
from shared.db import create_pool
from shared.failures import dependency_down
from shared.kafka import durable_producer
from shared.observability import ReadinessCheck, configure_logging
from shared.ops import NO_OTEL, GracefulServer, install_ops_routes
from shared.settings import SchedulerSettings

log = logging.getLogger(__name__)


async def poll_loop(
    runner: JobRunner, wake: asyncio.Event, stop: asyncio.Event, interval: float
) -> None:
    while not stop.is_set():
        try:
            while not stop.is_set() and await runner.run_one():
                pass
        except Exception as exc:  # a failed run keeps its checkpoint; the lease lets it resume
            metrics.JOB_ERRORS.inc()
            dependency = dependency_down(exc)
            if dependency is None:
                log.exception("send job run failed; will retry")
            else:  # one line per interval while it lasts (shared.observability)
                log.warning(
                    "send job run paused: a dependency is down",
                    extra={"dependency": dependency, "error": repr(exc)[:300]},
                )
            await asyncio.sleep(1)
        wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=interval)


async def serve(settings: SchedulerSettings) -> None:
    pool = await create_pool(settings.database_url, max_size=4)
    producer = durable_producer(settings.kafka_bootstrap, "pigeonhole-scheduler")
    await producer.start()
    owner = f"{socket.gethostname()}:{os.getpid()}"
    stop, wake = asyncio.Event(), asyncio.Event()
    runner = JobRunner(pool, producer, owner, settings.lease_seconds, stop)
    loop = asyncio.get_running_loop()

    def request_stop() -> None:
        stop.set()
        wake.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, request_stop)

    listener: asyncpg.Connection = await asyncpg.connect(settings.database_url)
    await listener.add_listener("send_jobs", lambda *_: wake.set())

    app = FastAPI(
        title="pigeonhole-scheduler", docs_url=None, redoc_url=None, openapi_url=None,
        telemetry=NO_OTEL,
    )  # fmt: skip

    def checks() -> dict[str, ReadinessCheck]:
        async def postgres() -> None:
            await pool.fetchval("SELECT 1")

        async def kafka() -> None:
            await producer.client.fetch_all_metadata()

        return {"postgres": postgres, "kafka": kafka}

    install_ops_routes(app, "scheduler", checks)
    server = GracefulServer(
        own_signals=False,
        config=uvicorn.Config(
            app,
            host=settings.metrics_host,
            port=settings.metrics_port,
            log_config=None,
            access_log=False,
        ),
    )
    web = asyncio.create_task(server.serve())
    purge = asyncio.create_task(
        purge_periodically(
            pool, settings.purge_grace_seconds, settings.purge_chunk,
            settings.purge_interval_seconds, stop,
            tombstones_kept_seconds=settings.tombstones_kept_seconds,
        )
    )  # fmt: skip
    log.info("scheduler started", extra={"owner": owner})
    try:
        await poll_loop(runner, wake, stop, settings.poll_interval_seconds)
    finally:
        server.should_exit = True
        await web
        await purge
        await listener.close()
        await producer.stop()
        await pool.close()
        log.info("scheduler stopped")


def main() -> None:
    settings = SchedulerSettings()
    configure_logging("scheduler", settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
