"""Fan-out: a campaign to N contacts, from start until every inbox entry is in PostgreSQL
and visible to sync, against a floor measured in the same run.

    .venv/bin/python -m bench.fanout                    # N = 1,000,000, one repetition
    .venv/bin/python -m bench.fanout --n 100000 --repeat 3
    .venv/bin/python -m bench.fanout --floor-only       # the floor alone (no campaign)

Each contact has attributes used by the content's merge tags. The campaign counts toward
the app's frequency limits (generous, so nobody is capped), so every recipient takes the
full path: scheduler -> Kafka -> delivery (contacts, personalization, cap script, inbox
entries filed, inbox version) -> outcome. The stack's own scheduler and delivery worker do the
work; their peak RSS is sampled every 0.5 s. The run is over when the statistics hold
an outcome for every recipient (bench/common.py: a signal that costs the same whatever
was filed); it fails (non-zero exit, saying how far it got) past ``--within`` seconds, if
any recipient was skipped, if the job's inbox entries are not exactly one per recipient,
or if any of a sample of 100 recipients does not see the message on ``/v1/sync``.

The floor is what any design pays, however narrow, measured in the same run: one COPY
(one transaction, fsync on) of the narrowest durable record a delivery needs (send job
id, contact id and the recipient's merge-tag values: ~100 bytes of data, ~125 with
PostgreSQL's row header, into a scratch table with the primary key (send_job_id,
contact_id) that idempotency needs), then the same cap script for the N recipients,
pipelined: calls of 10,000, two in flight, so that Redis runs one while the client
encodes the next. The two parts are added, not overlapped: on two cores PostgreSQL and
Redis compete for the same CPU. The floor does not depend on how inbox entries are
stored, so it does not get cheaper when they get narrower. ratio = seconds /
floor_seconds. Each run's JSON also has the WAL, checkpoints and Redis AOF work it
caused (the evidence for deploy/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import jwt
import redis.asyncio as aioredis

from bench.common import (
    PUBLISHER,
    SYNC,
    ExtraDeliveryWorker,
    admin_token,
    assert_filed_once,
    cpu_seconds_by_part,
    cpu_since,
    insert_contacts,
    log,
    median,
    redis_position,
    redis_since,
    report,
    rss_mb,
    service_pid,
    unlink_matching,
    wait_for_delivery,
    wait_for_outcomes,
    wal_position,
    wal_since,
)
from services.delivery.caps import FrequencyCaps, app_caps
from shared.redis_keys import cap_key_pattern, inbox_version_pattern
from shared.settings import CommonSettings
from shared.topics import bucket_of
from tests.seed_payloads import BOTTOM_BANNER

LIMITS = {"perDay": 1000}
SECOND_PORT = 9122  # web ports of the extra delivery workers (--delivery-workers)
CAP_CALL = 10_000
SAMPLE = 100


class Sampler:
    """Peak RSS of the stack's scheduler and delivery worker while a run goes on, and
    every pid each had (more than one: restarted meanwhile, the peak is not the run's)."""

    def __init__(self) -> None:
        self.names = ("scheduler", "delivery")
        self.peak = dict.fromkeys(self.names, 0.0)
        self.pids: dict[str, set[int]] = {name: set() for name in self.names}
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            for name in self.names:
                try:
                    pid = service_pid(name)
                except (OSError, ValueError):
                    continue  # being restarted
                rss = rss_mb(pid)
                if rss == rss:  # nan: the pid is gone
                    self.pids[name].add(pid)
                    self.peak[name] = max(self.peak[name], rss)
            await asyncio.sleep(0.5)

    def __enter__(self) -> Sampler:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def restarted(self) -> list[str]:
        return [name for name, pids in self.pids.items() if len(pids) != 1]


async def campaign_run(
    api: httpx.AsyncClient,
    conn: asyncpg.Connection,
    redis: aioredis.Redis,
    source: int,
    app: dict[str, str],
    content_id: str,
    n: int,
    within: float,
    jobs: list[int],
) -> dict[str, Any]:
    """Launch the campaign (its job id goes to ``jobs`` at once, for the clean-up) and wait
    until every recipient has an outcome."""
    body = {"name": "bench fanout", "content": {"inAppMessage": {"inAppContentId": content_id}},
            "include": [source], "appKeys": [app["appKey"]], "usingAppFrequency": True,
            "startNow": True, "batching": {"recipientsPerBatch": 1000}}  # fmt: skip
    wal, aof = await wal_position(conn), await redis_position(redis)
    cpu = cpu_seconds_by_part()
    with Sampler() as sampler:
        started = time.monotonic()
        response = await api.post("/campaigns", json=body)
        response.raise_for_status()
        job_id: int = response.json()["data"]["id"]
        jobs.append(job_id)
        await wait_for_outcomes(conn, job_id, n, within, started)
        seconds = time.monotonic() - started
    cpu_s = cpu_since(cpu)
    postgres = wal_since(wal, await wal_position(conn))
    persistence = redis_since(aof, await redis_position(redis))
    await assert_filed_once(conn, job_id, n)
    if restarted := sampler.restarted():
        log(f"restarted during the run (by someone else?): {restarted}; RSS peaks are partial")
    return {"job_id": job_id, "seconds": seconds, "rss_peak_mb": dict(sampler.peak),
            "restarted": restarted, "cpu_s": cpu_s, **postgres, **persistence}  # fmt: skip


async def visible_to_sync(app: dict[str, str], ids: list[str]) -> None:
    """Every one of a sample of recipients sees the message on its phone home, or exit."""
    unseen = []
    exp = int(time.time()) + 600
    async with httpx.AsyncClient(base_url=SYNC, timeout=30) as client:
        for contact_id in ids:
            token = jwt.encode({"sub": contact_id, "exp": exp}, app["appSecret"], algorithm="HS256")
            answer = await client.post(
                "/v1/sync", json={"platform": "gcm"},
                headers={"X-App-Key": app["appKey"], "Authorization": f"Bearer {token}"},
            )  # fmt: skip
            answer.raise_for_status()
            if not answer.json()["messages"]:
                unseen.append(contact_id)
    if unseen:
        raise SystemExit(f"{len(unseen)} of {len(ids)} sampled recipients see no message: {unseen}")


def merge_values(i: int) -> str:
    """A recipient's resolved merge-tag values as the floor stores them: ~60 bytes of
    JSON; with the ids and PostgreSQL's row header, a row is ~125 bytes."""
    return json.dumps({"First_Name": f"Name{i}", "expiration_date": "2026-12-01T00:00:00Z"})


async def floor_run(
    conn: asyncpg.Connection, redis: aioredis.Redis, ids: list[str], app_key: str, job_id: int
) -> dict[str, Any]:
    """One COPY of the narrowest durable record for N recipients into a fresh scratch
    table, then the same cap script for the N, pipelined; the table is dropped after."""
    table = f"bench_fanout_floor_{-job_id}"
    rows = [(job_id, contact_id, merge_values(i)) for i, contact_id in enumerate(ids)]
    caps, scopes = FrequencyCaps(redis), app_caps({app_key: LIMITS})
    await conn.execute(
        f"""CREATE TABLE {table} (send_job_id bigint NOT NULL, contact_id text NOT NULL,
                                  merge_values jsonb NOT NULL,
                                  PRIMARY KEY (send_job_id, contact_id))"""
    )
    try:
        wal, aof = await wal_position(conn), await redis_position(redis)
        started = time.monotonic()
        await conn.copy_records_to_table(
            table, records=rows, columns=["send_job_id", "contact_id", "merge_values"]
        )
        copied = time.monotonic()
        now, in_flight = datetime.now(UTC), asyncio.Semaphore(2)

        async def admit(chunk: list[str]) -> None:
            async with in_flight:
                await caps.admit(job_id, chunk, scopes, now)

        by_bucket = sorted(ids, key=bucket_of)  # as the scheduler batches: one slot tag a call
        await asyncio.gather(
            *(admit(by_bucket[start : start + CAP_CALL]) for start in range(0, len(ids), CAP_CALL))
        )
        seconds = time.monotonic() - started
        postgres = wal_since(wal, await wal_position(conn))
        persistence = redis_since(aof, await redis_position(redis))
        row_bytes = await conn.fetchval(
            f"SELECT avg(pg_column_size(t.*)) FROM {table} t TABLESAMPLE SYSTEM (1)"
        )
    finally:
        await conn.execute(f"DROP TABLE {table}")
    return {"seconds": seconds, "copy_seconds": copied - started,
            "caps_seconds": seconds - (copied - started),
            "row_bytes": round(float(row_bytes or 0), 1), **postgres, **persistence}  # fmt: skip


async def setup(api: httpx.AsyncClient, run: str) -> tuple[dict[str, str], str, int]:
    app = await api.post("/apps", json={"name": "bench-fanout", "frequencyLimits": LIMITS})
    content = await api.post("/channels/push/inappcontent", json=BOTTOM_BANNER)
    query = {"attribute": "run", "op": "eq", "value": run}
    source = await api.post("/contact-sources", json={"name": "fanout", "query": query})
    for response in (app, content, source):
        response.raise_for_status()
    return app.json()["data"], content.json()["data"]["id"], source.json()["data"]["id"]


async def floors_only(n: int, repeat: int) -> None:
    """The floor alone, ``repeat`` times: no contacts, no campaign (bench/results/fanout_floor)."""
    settings = CommonSettings()
    run = uuid.uuid4().hex[:8]
    ids = [f"fo-{run}-{i}" for i in range(n)]
    conn = await asyncpg.connect(settings.database_url)
    redis = aioredis.from_url(settings.redis_url)
    floors = []
    try:
        for i in range(repeat):
            floors.append(await floor_run(conn, redis, ids, f"fo-{run}", -int(time.time() * 1000)))
            log(f"floor {i + 1}: {floors[-1]}")
            await unlink_matching(redis, cap_key_pattern(f"fo-{run}-*"))
    finally:
        await unlink_matching(redis, cap_key_pattern(f"fo-{run}-*"))
        await redis.aclose()
        await conn.close()
    floor = median([f["seconds"] for f in floors])
    report("fanout_floor", {
        "n": n, "repeat": repeat, "floor_seconds": round(floor, 2),
        "floor_recipients_per_s": round(n / floor),
        "copy_seconds": round(median([f["copy_seconds"] for f in floors]), 2),
        "caps_seconds": round(median([f["caps_seconds"] for f in floors]), 2),
        "row_bytes": floors[0]["row_bytes"],
    }, {"floors": floors})  # fmt: skip


async def main(n: int, repeat: int, within: float, delivery_workers: int = 1) -> None:
    """With ``delivery_workers`` 2, a second worker joins the stack's consumer group for
    the campaigns (the floor is the same either way)."""
    async with contextlib.AsyncExitStack() as workers:
        for extra in range(1, delivery_workers):
            await workers.enter_async_context(
                ExtraDeliveryWorker(f"delivery-fanout-{extra + 1}", SECOND_PORT + extra - 1)
            )
        await _main(n, repeat, within, delivery_workers)


async def _main(n: int, repeat: int, within: float, delivery_workers: int) -> None:
    settings = CommonSettings()
    run = uuid.uuid4().hex[:8]
    ids = [f"fo-{run}-{i}" for i in range(n)]
    conn = await asyncpg.connect(settings.database_url)
    redis = aioredis.from_url(settings.redis_url)
    headers = {"Authorization": f"Bearer {admin_token()}"}
    runs: list[dict[str, Any]] = []
    floors: list[dict[str, Any]] = []
    jobs: list[int] = []
    try:
        log(f"inserting {n:,} contacts")
        attrs = {"run": run, "Dated": "2026-11-21"}
        await insert_contacts(conn, ids, lambda i, _c: {**attrs, "first_name": f"Name{i}"})
        async with httpx.AsyncClient(base_url=PUBLISHER, headers=headers, timeout=60) as api:
            app, content_id, source = await setup(api, run)
            for i in range(repeat):  # side by side: campaign, then floor, per repetition
                result = await campaign_run(
                    api, conn, redis, source, app, content_id, n, within, jobs
                )
                await visible_to_sync(app, ids[:: max(1, n // SAMPLE)][:SAMPLE])
                floor_job = -int(time.time() * 1000)
                floors.append(await floor_run(conn, redis, ids, app["appKey"], floor_job))
                runs.append(result)
                log(f"run {i + 1}: {result} (floor {floors[-1]})")
                await wait_for_delivery(within=60, poll=0.5, quiet=True)  # nothing handed over
                await conn.execute("DELETE FROM inbox_entries WHERE send_job_id = ANY($1)", jobs)
                await conn.execute("DELETE FROM cap_hits WHERE send_job_id = ANY($1)", jobs)
                await unlink_matching(redis, cap_key_pattern(f"fo-{run}-*"))
    finally:
        await conn.execute("DELETE FROM contacts WHERE contact_id = ANY($1)", ids)
        await wait_for_delivery(within=600)
        await conn.execute("DELETE FROM inbox_entries WHERE send_job_id = ANY($1)", jobs)
        await conn.execute("DELETE FROM cap_hits WHERE send_job_id = ANY($1)", jobs)
        for pattern in (cap_key_pattern(f"fo-{run}-*"), inbox_version_pattern(f"fo-{run}-*")):
            await unlink_matching(redis, pattern)
        await redis.aclose()
        await conn.close()
    seconds, floor = median([r["seconds"] for r in runs]), median([f["seconds"] for f in floors])
    report("fanout", {
        "n": n, "repeat": repeat, "delivery_workers": delivery_workers,
        "seconds": round(seconds, 2),
        "recipients_per_s": round(n / seconds), "floor_seconds": round(floor, 2),
        "ratio": round(seconds / floor, 2),
        "scheduler_rss_peak_mb": max(r["rss_peak_mb"]["scheduler"] for r in runs),
        "delivery_rss_peak_mb": max(r["rss_peak_mb"]["delivery"] for r in runs),
        "visible_of_sample": f"{SAMPLE}/{SAMPLE}",
        # what the campaign cost each part of the stack (the last run), in CPU seconds:
        # their sum over the machine's cores is the least the run could have taken
        "cpu_s": ",".join(f"{part}:{used:.0f}" for part, used in runs[-1]["cpu_s"].items()
                          if used >= 0.5),
    }, {"runs": runs, "floors": floors,
        "signal": "stats_outcomes hold an outcome for every recipient (bench/common.py)",
        "floor": "COPY of (send_job_id, contact_id, merge_values jsonb) with that primary key, "
                 f"then the cap script in calls of {CAP_CALL:,}, two in flight"})  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--within",
        type=float,
        default=None,
        help="time limit of one campaign run in s (default: max(120, n / 2000))",
    )
    parser.add_argument(
        "--delivery-workers",
        type=int,
        choices=(1, 2, 3),
        default=1,
        help="delivery workers in the consumer group during the campaigns "
        "(the stack's, plus extra ones started and stopped here)",
    )
    parser.add_argument("--floor-only", action="store_true",
                        help="measure the floor alone (BENCH fanout_floor)")  # fmt: skip
    args = parser.parse_args()
    if args.floor_only:
        asyncio.run(floors_only(args.n, args.repeat))
    else:
        within = args.within or max(120.0, args.n / 2000)
        asyncio.run(main(args.n, args.repeat, within, args.delivery_workers))
