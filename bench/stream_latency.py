"""Live streams under a fan-out: delivery -> stream event latency with many streams open on
one sync process, that process's memory, and what the streams cost the fan-out.

    .venv/bin/python -m bench.stream_latency                  # 100,000 recipients, 10,000 streams
    .venv/bin/python -m bench.stream_latency --n 20000 --streams 2000

Campaigns of the same in-app message to the same N contacts (bench/fanout.py's campaign:
usingAppFrequency, batches of 1,000): a warm-up, then ``--repeat`` pairs side by side, the
first of each with no stream open, the second with ``--streams`` of the recipients
holding ``GET /v1/stream`` open on the stack's sync process (opened afresh for it). Fan-out
times are the medians of each kind. Each stream is a plain HTTP/1.1 connection read by this
process (no HTTP library: 10,000 of them must cost the client little). A stream's latency
is the time its ``changed`` event arrived minus its entry's ``delivered_at`` (the filing
transaction's start in PostgreSQL, same machine and clock): it includes the rest of that
transaction, the version bump, the signal, the sync process's reads and the socket.

Reported: p50, p99 and max latency, how many streams heard of their message (every one,
or the run fails), the sync process's RSS before and with the streams open, and both
fan-out times with the slowdown. The target (issue "Devices"): p99 <= 1 s and the fan-out
slower by <= 10 %. On this 2-core machine the client reading the streams shares the cores
with the whole stack, so the slowdown is an upper bound.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import time
import uuid
from typing import Any

import asyncpg
import httpx
import jwt
import redis.asyncio as aioredis

from bench.common import (
    PUBLISHER,
    admin_token,
    insert_contacts,
    log,
    median,
    report,
    rss_mb,
    service_pid,
    wait_for_delivery,
)
from bench.fanout import campaign_run, setup
from shared.settings import CommonSettings

SYNC_HOST, SYNC_PORT = "127.0.0.1", 8081
OPEN_AT_ONCE = 200


class Streams:
    """``GET /v1/stream`` for many contacts, each on its own connection; the time each
    one's second ``changed`` event (the first after its opening one) arrives."""

    def __init__(self, app: dict[str, str], contacts: list[str]) -> None:
        self.app, self.contacts = app, contacts
        self.heard: dict[str, float] = {}
        self.all_heard = asyncio.Event()
        self.opened = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._ready: asyncio.Queue[str | None] = asyncio.Queue()

    async def __aenter__(self) -> Streams:
        exp = int(time.time()) + 3600
        for start in range(0, len(self.contacts), OPEN_AT_ONCE):
            chunk = self.contacts[start : start + OPEN_AT_ONCE]
            for contact_id in chunk:
                token = jwt.encode({"sub": contact_id, "exp": exp}, self.app["appSecret"], "HS256")
                self._tasks.append(asyncio.create_task(self._hold(contact_id, token)))
            for _ in chunk:
                if (failed := await self._ready.get()) is not None:
                    raise SystemExit(f"a stream did not open: {failed}")
            self.opened += len(chunk)
        return self

    async def __aexit__(self, *_: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _hold(self, contact_id: str, token: str) -> None:
        try:
            reader, writer = await asyncio.open_connection(SYNC_HOST, SYNC_PORT)
        except OSError as exc:
            await self._ready.put(f"{contact_id}: {exc}")
            return
        try:
            writer.write(
                f"GET /v1/stream HTTP/1.1\r\nHost: {SYNC_HOST}\r\nX-App-Key: {self.app['appKey']}"
                f"\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
            )
            status = await reader.readline()
            if b" 200 " not in status:
                await self._ready.put(f"{contact_id}: {status!r}")
                return
            events = 0
            while line := await reader.readline():
                if line.startswith(b"event: changed"):
                    events += 1
                    if events == 1:
                        await self._ready.put(None)
                    elif contact_id not in self.heard:
                        self.heard[contact_id] = time.time()
                        if len(self.heard) == len(self.contacts):
                            self.all_heard.set()
        finally:
            writer.close()


async def latencies(conn: asyncpg.Connection, job_id: int, heard: dict[str, float]) -> list[float]:
    rows = await conn.fetch(
        """SELECT contact_id, extract(epoch FROM delivered_at)::float8 AS at
             FROM inbox_entries WHERE send_job_id = $1 AND contact_id = ANY($2)""",
        job_id,
        list(heard),
    )
    return sorted(heard[r["contact_id"]] - r["at"] for r in rows)


def percentile(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))]


async def main(n: int, streams: int, repeat: int, within: float) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, streams + 1024), hard))
    settings = CommonSettings()
    run = uuid.uuid4().hex[:8]
    ids = [f"st-{run}-{i}" for i in range(n)]
    watched = ids[:: max(1, n // streams)][:streams]
    conn = await asyncpg.connect(settings.database_url)
    redis = aioredis.from_url(settings.redis_url)
    headers = {"Authorization": f"Bearer {admin_token()}"}
    jobs: list[int] = []
    without: list[dict[str, Any]] = []
    with_streams: list[dict[str, Any]] = []
    rss: dict[str, float] = {}
    lags: list[float] = []
    try:
        log(f"inserting {n:,} contacts")
        await insert_contacts(conn, ids, lambda i, _c: {"run": run, "first_name": f"N{i}"})
        async with httpx.AsyncClient(base_url=PUBLISHER, headers=headers, timeout=60) as api:
            app, content_id, source = await setup(api, run)
            args = (api, conn, redis, source, app, content_id, n, within, jobs)
            log(f"warm-up: {(await campaign_run(*args))['seconds']:.1f} s")
            for i in range(repeat):  # side by side: without, then with the streams open
                await wait_for_delivery(within=60, poll=0.5, quiet=True)
                without.append(await campaign_run(*args))
                await wait_for_delivery(within=60, poll=0.5, quiet=True)
                # the first run's "before" is the process without streams; later runs
                # start from memory the earlier streams left to Python's allocator
                rss.setdefault("before", rss_mb(service_pid("sync")))
                async with Streams(app, watched) as open_streams:
                    rss["with_streams"] = max(
                        rss.get("with_streams", 0.0), rss_mb(service_pid("sync"))
                    )
                    log(f"{open_streams.opened:,} streams open; the campaign starts")
                    with_streams.append(await campaign_run(*args))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(open_streams.all_heard.wait(), 30)
                    heard = dict(open_streams.heard)
                log(f"run {i + 1}: {without[-1]['seconds']:.1f} s without, "
                    f"{with_streams[-1]['seconds']:.1f} s with {open_streams.opened:,} streams "
                    f"({len(heard):,} heard; sync RSS {rss['with_streams']:.0f} MB)")  # fmt: skip
                if len(heard) != len(watched):
                    raise SystemExit(f"{len(watched) - len(heard):,} streams heard nothing")
                lags += await latencies(conn, with_streams[-1]["job_id"], heard)
    finally:
        await wait_for_delivery(within=600)
        await conn.execute("DELETE FROM contacts WHERE contact_id = ANY($1)", ids)
        await conn.execute("DELETE FROM inbox_entries WHERE send_job_id = ANY($1)", jobs)
        await conn.execute("DELETE FROM cap_hits WHERE send_job_id = ANY($1)", jobs)
        await redis.aclose()
        await conn.close()
    lags.sort()
    seconds_without = median([r["seconds"] for r in without])
    seconds_with = median([r["seconds"] for r in with_streams])
    report("stream", {
        "n": n, "streams": len(watched), "repeat": repeat,
        "latency_p50_s": round(median(lags), 3), "latency_p99_s": round(percentile(lags, 0.99), 3),
        "latency_max_s": round(lags[-1], 3),
        "sync_rss_mb_before": round(rss["before"]),
        "sync_rss_mb_with_streams": round(rss["with_streams"]),
        "fanout_s_without": round(seconds_without, 1), "fanout_s_with": round(seconds_with, 1),
        "fanout_slowdown_pct": round(100 * (seconds_with / seconds_without - 1), 1),
    }, {"without": without, "with": with_streams})  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="recipients")
    parser.add_argument("--streams", type=int, default=10_000, help="streams held open")
    parser.add_argument("--repeat", type=int, default=2, help="pairs of campaigns")
    parser.add_argument("--within", type=float, default=600, help="seconds per campaign")
    options = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(options.n, options.streams, options.repeat, options.within))
