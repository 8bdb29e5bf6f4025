"""Scale-out: recipients filed per second by 1, 2 and 3 delivery workers in one consumer
group, and phone homes per second answered by 1 and 2 sync processes sharing one port,
with the CPU every part of the stack used, which is what bounds the gain on this machine.

    .venv/bin/python -m bench.scaleout                       # N = 200,000, 3 repetitions
    .venv/bin/python -m bench.scaleout --n 20000 --repeat 1 --sync-seconds 3   # quick

Delivery (caps off, the batches of bench/delivery_throughput.py: 1,000 recipients, one
bucket each, produced straight onto pigeonhole.sends for a completed job): per repetition
a run with the stack's worker alone, then a second worker joins the group
(bench/common.py ExtraDeliveryWorker, started as services.sh starts the stack's, web port
9112) and a run with both, then a third (9113) and a run with the three; the extra workers
stop and, once the group has settled and every batch is committed, each run must still
have exactly one inbox entry per recipient (``filed_once``; batches a stopping worker had
not committed yet go to another, which reports their recipients as duplicates:
``redelivered``, from the workers' /metrics, which count every job: on a shared stack,
others' duplicates too). A run during which the stack's worker was restarted by someone else is
measured again. Needs the stack's delivery at 1 worker (PIGEONHOLE_DELIVERY_WORKERS=1).

Sync ("nothing new" phone homes, the most common; wrk at ``--concurrency``): two sync
services of the benchmark's own (bench/sync_load.py SyncServer: 1 process on port 18081,
2 on 18082), measured in turn, ``--repeat`` times each after a warm-up.

``BENCH scaleout n=... batch=1000 one_worker_recipients_per_s=...
two_workers_recipients_per_s=... three_workers_recipients_per_s=... ratio_two=...
ratio_three=... filed_once=true redelivered=... cpu_us_per_recipient=... cores_busy_one=...
cores_busy_three=... bound_recipients_per_s=... sync_one_process_rps=...
sync_two_processes_rps=... sync_ratio=... sync_cpu_us_per_request=...
sync_cores_busy_two=... sync_bound_rps=... cores=...`` (medians). ``cpu_us_per_recipient``
is the CPU every part of the stack (delivery, PostgreSQL, Redis, Kafka, statistics, the
producer) spent per recipient with one worker; ``bound_recipients_per_s`` = cores / that:
what the machine could file if every part used every core, which more workers cannot pass.
The same for sync (sync processes, Redis, PostgreSQL and wrk per phone home). CPU by part
per run is in bench/results/scaleout.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import uuid
from contextlib import AsyncExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import sync_load
from bench.common import (
    PUBLISHER,
    ExtraDeliveryWorker,
    admin_token,
    assert_filed_once,
    cpu_seconds_by_part,
    cpu_since,
    log,
    median,
    recipient_counts,
    report,
    wait_for_delivery,
)
from bench.delivery_throughput import (
    Run,
    batches_of,
    choose_contacts,
    clean_up,
    insert_contacts,
    measure,
    new_job,
    preset_versions,
    publish,
)
from shared.settings import DeliverySettings
from tests.stack_control import service_processes

WORKERS = ("one", "two", "three")
EXTRA_PORTS = (9112, 9113)
SYNC_PORTS = {1: 18081, 2: 18082}
CORES = os.cpu_count() or 1


def stack_parts(cpu: dict[str, float]) -> float:
    """CPU seconds of the stack and the load it is given (not others' work on the machine)."""
    return sum(seconds for part, seconds in cpu.items() if part != "other")


# ---------------------------------------------------------------- delivery


class Delivery:
    """The delivery side: contacts, content and a producer, and one repetition's runs."""

    def __init__(self, n: int, per_batch: int, conn: asyncpg.Connection) -> None:
        self.n, self.per_batch, self.conn = n, per_batch, conn
        self.runs: list[Run] = []
        self.cpu: list[dict[str, float]] = []
        self.content = self.app_key = ""
        self.by_bucket = choose_contacts(uuid.uuid4().hex[:10], n, per_batch)
        bootstrap = DeliverySettings().kafka_bootstrap
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1 << 20
        )

    async def run(self, mode: str, pair: int) -> Run:
        run = Run(mode, job_id=await new_job(self.conn, self.content, self.app_key), pair=pair)
        self.runs.append(run)  # before measuring: clean-up needs every job id
        messages = batches_of(run.job_id, self.content, self.app_key, self.by_bucket,
                              self.per_batch, False)  # fmt: skip
        before = cpu_seconds_by_part()
        await measure(run, self.n, messages, self.producer, self.conn, max(300.0, self.n / 500))
        cpu = cpu_since(before)
        self.cpu.append(cpu)
        await wait_for_delivery(within=60, poll=0.5, quiet=True)  # nothing to hand over again
        log(
            f"{mode:>5} worker(s): {run.seconds:.2f} s, {run.recipients_per_s:,.0f} recipients/s,"
            f" cores busy {stack_parts(cpu) / run.seconds:.2f} (others {cpu.get('other', 0)} s)"
        )
        return run

    async def repetition(self, pair: int) -> list[Run]:
        """1, 2, then 3 workers; afterwards every run's recipients filed exactly once."""
        counts = [recipient_counts(DeliverySettings().web_port)]
        runs = [await self.run("one", pair)]
        async with AsyncExitStack() as extras:
            for mode, port in zip(WORKERS[1:], EXTRA_PORTS, strict=True):
                name = f"delivery-bench-{port}"
                await extras.enter_async_context(ExtraDeliveryWorker(name, port))
                runs.append(await self.run(mode, pair))
            counts += [recipient_counts(port) for port in EXTRA_PORTS]
        await wait_for_delivery(within=60, poll=0.5, quiet=True)
        counts.append(recipient_counts(DeliverySettings().web_port))
        for run in runs:
            await assert_filed_once(self.conn, run.job_id, self.n)
            await self.conn.execute("DELETE FROM inbox_entries WHERE send_job_id = $1", run.job_id)
        # duplicates: the stack's worker over the repetition, the extras since they started
        runs[-1].redelivered = int(
            counts[-1].get("duplicate", 0) - counts[0].get("duplicate", 0)
            + sum(c.get("duplicate", 0) for c in counts[1:-1])
        )  # fmt: skip
        return runs


async def measure_delivery(n: int, repeat: int, per_batch: int) -> tuple[Delivery, list[Run]]:
    settings = DeliverySettings()
    conn: asyncpg.Connection = await asyncpg.connect(settings.database_url)
    redis = aioredis.from_url(settings.redis_url)
    delivery = Delivery(n - n % per_batch, per_batch, conn)
    ids = [c for members in delivery.by_bucket.values() for c in members]
    headers = {"Authorization": f"Bearer {admin_token()}"}
    kept: list[Run] = []
    async with httpx.AsyncClient(base_url=PUBLISHER, headers=headers, timeout=60) as api:
        try:
            app = await api.post("/apps", json={"name": f"bench-scaleout-{uuid.uuid4().hex[:6]}"})
            app.raise_for_status()
            delivery.app_key = app.json()["data"]["appKey"]
            delivery.content = await publish(api)
            await insert_contacts(conn, "scaleout", ids)
            await conn.execute("ANALYZE contacts")
            await preset_versions(redis, ids)
            await delivery.producer.start()
            await wait_for_delivery(within=120)
            while len(kept) < 3 * repeat:
                if len(delivery.runs) >= 3 * (repeat + 3):
                    raise SystemExit("the delivery worker kept being restarted; giving up")
                runs = await delivery.repetition(len(delivery.runs) // 3)
                if any(r.disturbed for r in runs):
                    log("the stack's worker was restarted meanwhile: measuring again")
                    continue
                kept += runs
        finally:
            await delivery.producer.stop()
            await clean_up(conn, redis, api, ids, [r.job_id for r in delivery.runs], [], "",
                           [delivery.content] if delivery.content else [])  # fmt: skip
            await redis.aclose()
            await conn.close()
    return delivery, kept


# ---------------------------------------------------------------- sync


def measure_sync(contacts: int, seconds: float, repeat: int, concurrency: int) -> dict[str, Any]:
    """ "Nothing new" phone homes a second with 1 and with 2 sync processes, in turn."""
    binary = sync_load.ensure_wrk()
    data = asyncio.run(sync_load.setup(contacts, 5))
    lines = Path(tempfile.mkdtemp(prefix="ph-bench-")) / "same.txt"
    lines.write_text("".join(f"{t} gcm.{data['version']}\n" for t in data["tokens"]))
    key = data["app"]["appKey"]
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    try:
        with (
            sync_load.SyncServer(1, SYNC_PORTS[1]) as one,
            sync_load.SyncServer(2, SYNC_PORTS[2]) as two,
        ):
            servers = {1: one, 2: two}
            for server in servers.values():  # tokens verified once, as for returning devices
                sync_load.wrk(binary, server.url, lines, key, concurrency, max(2.0, seconds / 2))
            for _ in range(repeat):
                for processes, server in servers.items():
                    before = cpu_seconds_by_part()
                    result = sync_load.wrk(binary, server.url, lines, key, concurrency, seconds)
                    cpu = cpu_since(before)
                    runs[processes].append({**result, "cpu": cpu})
                    log(f"sync, {processes} process(es): {result['rps']:,.0f} phone homes/s, "
                        f"cores busy {stack_parts(cpu) / result['seconds']:.2f}, "
                        f"errors {result['errors']}")  # fmt: skip
    finally:
        asyncio.run(sync_load.cleanup(data))
    return {"runs": runs, "concurrency": concurrency, "contacts": contacts}


# ---------------------------------------------------------------- report


def delivery_figures(delivery: Delivery, kept: list[Run]) -> dict[str, Any]:
    rate = {m: median([r.recipients_per_s for r in kept if r.mode == m]) for m in WORKERS}
    cpu = {id(r): c for r, c in zip(delivery.runs, delivery.cpu, strict=True)}
    per_recipient = median([stack_parts(cpu[id(r)]) / delivery.n for r in kept if r.mode == "one"])

    def busy(mode: str) -> float:
        return median([stack_parts(cpu[id(r)]) / r.seconds for r in kept if r.mode == mode])

    return {
        "n": delivery.n,
        "batch": delivery.per_batch,
        "one_worker_recipients_per_s": round(rate["one"]),
        "two_workers_recipients_per_s": round(rate["two"]),
        "three_workers_recipients_per_s": round(rate["three"]),
        "ratio_two": round(rate["two"] / rate["one"], 3),
        "ratio_three": round(rate["three"] / rate["one"], 3),
        "filed_once": "true",  # every run checked it, or the benchmark stopped there
        "redelivered": sum(r.redelivered or 0 for r in kept),
        "cpu_us_per_recipient": round(per_recipient * 1e6, 1),
        "cores_busy_one": round(busy("one"), 2),
        "cores_busy_three": round(busy("three"), 2),
        "bound_recipients_per_s": round(CORES / per_recipient),
    }


def sync_figures(sync: dict[str, Any]) -> dict[str, Any]:
    runs = sync["runs"]
    rps = {p: median([r["rps"] for r in runs[p]]) for p in runs}
    per_request = median([stack_parts(r["cpu"]) / r["requests"] for r in runs[1]])
    busy = median([stack_parts(r["cpu"]) / r["seconds"] for r in runs[2]])
    errors = sum(r["errors"] for rs in runs.values() for r in rs)
    if errors:
        raise SystemExit(f"sync answered {errors} phone homes with an error")
    return {
        "sync_one_process_rps": round(rps[1]),
        "sync_two_processes_rps": round(rps[2]),
        "sync_ratio": round(rps[2] / rps[1], 3),
        "sync_cpu_us_per_request": round(per_request * 1e6, 1),
        "sync_cores_busy_two": round(busy, 2),
        "sync_bound_rps": round(CORES / per_request),
        "cores": CORES,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=200_000, help="recipients (default 200,000)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--batch", type=int, default=1000, help="recipients per batch")
    parser.add_argument("--sync-contacts", type=int, default=20_000)
    parser.add_argument("--sync-seconds", type=float, default=8, help="each sync run")
    parser.add_argument("--concurrency", type=int, default=64, help="wrk's connections")
    args = parser.parse_args()
    running = len(service_processes("delivery"))
    if running != 1:
        raise SystemExit(
            f"the stack runs {running} delivery workers; scale-out starts from one: "
            "PIGEONHOLE_DELIVERY_WORKERS=1 bash deploy/local/services.sh up delivery"
        )
    delivery, kept = asyncio.run(measure_delivery(args.n, args.repeat, args.batch))
    sync = measure_sync(args.sync_contacts, args.sync_seconds, args.repeat, args.concurrency)
    figures = {**delivery_figures(delivery, kept), **sync_figures(sync)}
    details = {
        "delivery_runs": [{**asdict(r), "cpu_s": c} for r, c in zip(delivery.runs, delivery.cpu,
                                                                      strict=True)],
        "sync": sync,
        "bound": f"{CORES} cores shared by every part: the workers add CPU to the delivery "
        "part only, while PostgreSQL, Redis, Kafka and the statistics need theirs per "
        "recipient too; bound_recipients_per_s = cores / CPU of all parts per recipient",
    }  # fmt: skip
    report("scaleout", figures, details)
    print(f"scaleout: on {CORES} cores the gain is bounded by CPU: every part together used "
          f"{figures['cpu_us_per_recipient']} µs per recipient with one worker (cores busy "
          f"{figures['cores_busy_one']}), so no number of workers files more than "
          f"~{figures['bound_recipients_per_s']:,} recipients/s here; sync: "
          f"{figures['sync_cpu_us_per_request']} µs per phone home (sync, Redis, wrk), "
          f"bound ~{figures['sync_bound_rps']:,}/s", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
