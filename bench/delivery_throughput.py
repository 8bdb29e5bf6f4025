"""Delivery throughput: recipients filed per second by one delivery worker (the stack's)
with 1,000-recipient batches, with frequency caps off and on, side by side. (With 1, 2
and 3 workers in the consumer group: bench/scaleout.py, which reuses these pieces.)

    .venv/bin/python bench/delivery_throughput.py                      # N = 200,000, 3 pairs
    .venv/bin/python bench/delivery_throughput.py --n 20000 --repeat 1 # a quick run

Needs the stack (`make up`). Setup writes N contacts straight into PostgreSQL with COPY
(the API import would dominate), chosen so that every batch is exactly one bucket of
1,000 recipients; the app, contents and tag cap go through the publisher API. The app's
frequencyLimits and the tag cap are generous enough never to cap anyone.

Each run produces a fresh job's SendBatch events straight onto pigeonhole.sends (as
the scheduler would: partition = bucket % partitions, key = bucket; serialized before the
clock starts) as fast as the producer goes, and times first produce -> an outcome for
each of the N recipients in the statistics (bench/common.py: a completion signal that
does not grow with the rows filed). Each run then checks, once, that every recipient has
exactly one inbox entry; a run that misses either, or its time limit, ends the benchmark
with a non-zero exit. The modes alternate, off, on, off, on, ...:

- caps off: a plain send of untagged content (no cap applies, no Redis cap call);
- caps on:  options.using_app_frequency with content carrying the capped tag, so each
            recipient is checked and counted against the app's window set and the tag's
            set (one Lua call per recipient, pipelined per batch).

Each run's entries are deleted before the next (the table stays the same size). The
worker's resident memory is sampled at every poll. Afterwards the contacts, entries,
Redis cap sets and inbox versions, tag cap and contents are deleted.

``BENCH delivery n=... batch=1000 recipients_per_s=... caps_on_recipients_per_s=...
caps_ratio=... rss_peak_mb=...`` (medians; caps_ratio = caps on / caps off); the details
go to bench/results/delivery.json.

"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    PUBLISHER,
    admin_token,
    assert_filed_once,
    log,
    median,
    report,
    rss_mb,
    service_pid,
    wait_for_delivery,
    wait_for_outcomes,
)
from services.delivery.caps import cap_key
from shared.events import Recipient, SendBatch, SendOptions
from shared.redis_keys import inbox_version
from shared.settings import DeliverySettings
from shared.topics import BUCKETS, SENDS, bucket_of, partition_of
from tests.seed_payloads import BOTTOM_BANNER

COPY_CHUNK = 50_000
KEY_CHUNK = 5_000


# ---------------------------------------------------------------- audience


def choose_contacts(run: str, n: int, batch: int) -> dict[int, list[str]]:
    """Contact ids ``bd-<run>-<i>`` by bucket, n // batch full batches of one bucket each,
    spread round-robin over the buckets (so over the partitions)."""
    batches = n // batch
    quota = {b: batch * (batches // BUCKETS + (1 if b < batches % BUCKETS else 0))
             for b in range(BUCKETS)}  # fmt: skip
    chosen: dict[int, list[str]] = defaultdict(list)
    remaining, i = batches * batch, 0
    while remaining:
        contact_id = f"bd-{run}-{i}"
        bucket = bucket_of(contact_id)
        if len(chosen.get(bucket, ())) < quota[bucket]:
            chosen[bucket].append(contact_id)
            remaining -= 1
        i += 1
    return chosen


async def insert_contacts(conn: asyncpg.Connection, run: str, ids: list[str]) -> None:
    rows = [(c, bucket_of(c), json.dumps({"run": run, "First_Name": c[-6:]}), "{}") for c in ids]
    for start in range(0, len(rows), COPY_CHUNK):
        await conn.copy_records_to_table(
            "contacts",
            records=rows[start : start + COPY_CHUNK],
            columns=["contact_id", "bucket", "attributes", "subscriptions"],
        )


async def preset_versions(redis: aioredis.Redis, ids: list[str]) -> None:
    """Give every contact an inbox version, as a contact that had a message before has: the
    first run then does not pay for creating 200,000 keys that later runs only bump."""
    now_ms = int(time.time() * 1000)
    for start in range(0, len(ids), KEY_CHUNK):
        async with redis.pipeline(transaction=False) as pipe:
            for contact_id in ids[start : start + KEY_CHUNK]:
                pipe.set(inbox_version(contact_id), now_ms, nx=True)
            await pipe.execute()


# ---------------------------------------------------------------- one run


@dataclass
class Run:
    mode: str  # caps "off" | "on"; bench/scaleout.py: "one" | "two" | "three" workers
    job_id: int
    seconds: float = 0.0
    recipients_per_s: float = 0.0
    produce_seconds: float = 0.0
    rss_peak_mb: float = 0.0
    pair: int = 0
    worker_pids: list[int] = field(default_factory=list)
    redelivered: int | None = None  # bench/scaleout.py: recipients handed over again

    @property
    def disturbed(self) -> bool:
        """The worker was restarted (by someone else) while this run was measured."""
        return len(self.worker_pids) != 1


def worker() -> tuple[int, float]:
    """The stack's delivery worker: (pid, RSS in MB); (0, nan) while it is down."""
    try:
        pid = service_pid("delivery")
        return pid, rss_mb(pid)
    except (OSError, ValueError):
        return 0, float("nan")


def batches_of(
    job_id: int,
    content_id: str,
    app_key: str,
    by_bucket: dict[int, list[str]],
    per_batch: int,
    caps: bool,
) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value) of each SendBatch, serialized ahead of the clock."""
    launched, options = datetime.now(UTC), SendOptions(using_app_frequency=caps)
    out: list[tuple[int, bytes, bytes]] = []
    for bucket in sorted(by_bucket):
        members = by_bucket[bucket]
        for start in range(0, len(members), per_batch):
            event = SendBatch(
                job_id=job_id,
                batch_seq=len(out),
                bucket=bucket,
                content_id=content_id,
                content_kind="inapp",
                app_keys=[app_key],
                options=options,
                launched_at=launched,
                recipients=[Recipient(contact_id=c) for c in members[start : start + per_batch]],
            )
            out.append(
                (
                    partition_of(bucket, SENDS.partitions),
                    str(bucket).encode(),
                    event.model_dump_json().encode(),
                )
            )
    return out


async def measure(
    run: Run,
    n: int,
    messages: list[tuple[int, bytes, bytes]],
    producer: AIOKafkaProducer,
    conn: asyncpg.Connection,
    within: float,
) -> None:
    pid, peak = worker()
    pids = {pid}

    def sample() -> None:
        nonlocal peak
        pid, rss = worker()
        pids.add(pid)
        peak = max(peak, rss) if rss == rss else peak  # nan while the worker is down

    started = time.monotonic()
    pending = [
        await producer.send(SENDS.name, value, key=key, partition=partition)
        for partition, key, value in messages
    ]
    await asyncio.gather(*pending)
    run.produce_seconds = round(time.monotonic() - started, 3)
    await wait_for_outcomes(conn, run.job_id, n, within, started, sample)
    run.seconds = round(time.monotonic() - started, 3)
    run.recipients_per_s = round(n / run.seconds, 1)
    run.rss_peak_mb = round(peak, 1)
    run.worker_pids = sorted(pids)
    await assert_filed_once(conn, run.job_id, n)


async def new_job(conn: asyncpg.Connection, content_id: str, app_key: str) -> int:
    """A completed send job row (no scheduler runs it): statistics count only real jobs."""
    job_id: int = await conn.fetchval(
        """INSERT INTO send_jobs (kind, content_id, app_keys, options, status)
           VALUES ('direct', $1, $2, '{}'::jsonb, 'completed') RETURNING id""",
        content_id, [app_key],
    )  # fmt: skip
    return job_id


async def measure_pair(
    index: int,
    n: int,
    producer: AIOKafkaProducer,
    conn: asyncpg.Connection,
    within: float,
    runs: list[Run],
    setup: tuple[str, str, str],
    by_bucket: dict[int, list[str]],
    per_batch: int,
) -> list[Run]:
    """Caps off, then caps on, each a fresh job; each run's entries deleted after it."""
    plain, tagged, app_key = setup
    pair = []
    for mode in ("off", "on"):
        content = tagged if mode == "on" else plain
        run = Run(mode, job_id=await new_job(conn, content, app_key), pair=index)
        runs.append(run)  # before measuring: clean-up needs every job id
        pair.append(run)
        messages = batches_of(run.job_id, content, app_key, by_bucket, per_batch, mode == "on")
        await measure(run, n, messages, producer, conn, within)
        log(
            f"pair {index + 1} caps {mode:>3}: {run.seconds:.2f} s, "
            f"{run.recipients_per_s:,.0f} recipients/s (produced in {run.produce_seconds:.2f} s), "
            f"worker RSS peak {run.rss_peak_mb} MB, pid {run.worker_pids}"
        )
        await wait_for_delivery(within=60, poll=0.5, quiet=True)  # nothing to hand over again
        await conn.execute("DELETE FROM inbox_entries WHERE send_job_id = $1", run.job_id)
    return pair


# ---------------------------------------------------------------- clean-up


async def clean_up(
    conn: asyncpg.Connection,
    redis: aioredis.Redis,
    api: httpx.AsyncClient,
    ids: list[str],
    job_ids: list[int],
    scopes: list[str],
    tag: str,
    content_ids: list[str],
) -> None:
    if job_ids:
        deleted = await conn.execute(
            "DELETE FROM inbox_entries WHERE send_job_id = ANY($1)", job_ids
        )
        log(f"inbox entries of jobs {job_ids}: {deleted}")
        await conn.execute("DELETE FROM stats_outcomes WHERE send_job_id = ANY($1)", job_ids)
        await conn.execute(
            "DELETE FROM stats_applied_events WHERE event_id LIKE ANY($1)",
            [f"delivered-{job_id}-%" for job_id in job_ids],
        )
        await conn.execute("DELETE FROM cap_hits WHERE send_job_id = ANY($1)", job_ids)
        if await conn.fetchval("SELECT to_regclass('filed_batches')") is not None:
            await conn.execute("DELETE FROM filed_batches WHERE send_job_id = ANY($1)", job_ids)
        await conn.execute("DELETE FROM send_jobs WHERE id = ANY($1)", job_ids)
    log(f"contacts: {await conn.execute('DELETE FROM contacts WHERE contact_id = ANY($1)', ids)}")
    keys = 0
    for start in range(0, len(ids), KEY_CHUNK):
        chunk = ids[start : start + KEY_CHUNK]
        names = [inbox_version(c) for c in chunk] + [cap_key(c, s) for c in chunk for s in scopes]
        keys += await redis.unlink(*names)
    log(f"Redis: {keys} keys (inbox versions and cap sets) deleted")
    await api.delete(f"/tag-caps/{tag}")
    for content_id in content_ids:
        await api.delete(f"/channels/push/inappcontent/{content_id}")


# ---------------------------------------------------------------- main


async def publish(api: httpx.AsyncClient, **extra: Any) -> str:
    response = await api.post(
        "/channels/push/inappcontent", json={**copy.deepcopy(BOTTOM_BANNER), **extra}
    )
    if response.status_code != 201:
        raise SystemExit(f"POST /channels/push/inappcontent: {response.text}")
    content_id: str = response.json()["data"]["id"]
    return content_id


async def main(n: int, repeat: int, per_batch: int) -> int:
    settings = DeliverySettings()
    n -= n % per_batch
    run_id = uuid.uuid4().hex[:10]
    tag = f"bench-{run_id}"
    by_bucket = choose_contacts(run_id, n, per_batch)
    ids = [c for members in by_bucket.values() for c in members]
    conn: asyncpg.Connection = await asyncpg.connect(settings.database_url)
    redis = aioredis.from_url(settings.redis_url)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5, max_batch_size=1 << 20
    )
    headers = {"Authorization": f"Bearer {admin_token()}"}
    runs: list[Run] = []
    content_ids: list[str] = []
    app_key = ""
    within = max(300.0, n / 500)
    async with httpx.AsyncClient(base_url=PUBLISHER, headers=headers, timeout=60) as api:
        try:
            app = await api.post(
                "/apps", json={"name": f"bench-{run_id}", "frequencyLimits": {"perDay": 1000}}
            )
            app.raise_for_status()
            app_key = app.json()["data"]["appKey"]
            capped = await api.put(
                f"/tag-caps/{tag}", json={"maxCount": 1000, "periodSeconds": 86400}
            )
            capped.raise_for_status()
            plain, tagged = await publish(api), await publish(api, tags=[tag])
            content_ids = [plain, tagged]

            started = time.monotonic()
            await insert_contacts(conn, run_id, ids)
            await conn.execute("ANALYZE contacts")
            await preset_versions(redis, ids)
            log(f"{n:,} contacts in {len(by_bucket)} buckets ({time.monotonic() - started:.1f} s)")

            await producer.start()
            await wait_for_delivery(within=120)
            pid, rss = worker()
            log(f"delivery worker pid {pid}, RSS {rss:.1f} MB")
            common = {"n": n, "producer": producer, "conn": conn, "within": within,
                      "runs": runs, "by_bucket": by_bucket, "per_batch": per_batch}  # fmt: skip
            pair = partial(measure_pair, setup=(plain, tagged, app_key), **common)
            await repeat_pairs(repeat, runs, "caps on / caps off", pair)
        finally:
            await producer.stop()
            scopes = [f"app:{app_key}", f"tag:{tag}"] if app_key else []
            await clean_up(conn, redis, api, ids, [r.job_id for r in runs], scopes, tag,
                           content_ids)  # fmt: skip
            await redis.aclose()
            await conn.close()

    report_caps(runs, n, repeat, per_batch)
    return 0


async def repeat_pairs(
    repeat: int, runs: list[Run], label: str, measure: Callable[[int], Awaitable[list[Run]]]
) -> None:
    """``repeat`` undisturbed pairs: a pair during which the stack's worker was restarted (by
    someone else) is measured again."""
    first, done = len(runs), 0
    while done < repeat:
        if len(runs) - first >= 2 * (repeat + 3):
            raise SystemExit("the delivery worker kept being restarted; giving up")
        pair = await measure((len(runs) - first) // 2)
        if any(r.disturbed for r in pair):
            log("the worker was restarted during this pair: discarded, measuring again")
            continue
        done += 1
        log(f"pair {done}/{repeat}: {label} = "
            f"{pair[1].recipients_per_s / pair[0].recipients_per_s:.3f}")  # fmt: skip


def kept_runs(runs: list[Run]) -> tuple[list[Run], set[int]]:
    discarded = {r.pair for r in runs if r.disturbed}
    return [r for r in runs if r.pair not in discarded], discarded


def report_caps(runs: list[Run], n: int, repeat: int, per_batch: int) -> None:
    kept, discarded = kept_runs(runs)
    off = [r.recipients_per_s for r in kept if r.mode == "off"]
    on = [r.recipients_per_s for r in kept if r.mode == "on"]
    ratios = [
        b.recipients_per_s / a.recipients_per_s for a, b in zip(kept[::2], kept[1::2], strict=True)
    ]
    figures = {
        "n": n,
        "batch": per_batch,
        "recipients_per_s": round(median(off)),
        "caps_on_recipients_per_s": round(median(on)),
        "caps_ratio": round(median(on) / median(off), 3),
        "rss_peak_mb": max(r.rss_peak_mb for r in kept),
    }
    details = {
        "repeat": repeat,
        "batches_per_run": n // per_batch,
        "pair_ratios": [round(r, 3) for r in ratios],
        "runs": [{**asdict(r), "discarded": r.pair in discarded} for r in runs],
        "caps_on": "using_app_frequency + tagged content: app window set and tag set checked",
        "timing": "first produce -> an outcome for every recipient in stats_outcomes",
    }
    report("delivery", figures, details)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=200_000, help="recipients (default 200,000)")
    parser.add_argument("--repeat", type=int, default=3, help="pairs of runs (default 3)")
    parser.add_argument("--batch", type=int, default=1000, help="recipients per batch")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.n, args.repeat, args.batch)))
