"""Shared pieces of the benchmarks: the stack's API and data, processes, results."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from shared.settings import DeliverySettings  # noqa: E402
from shared.topics import SENDS, bucket_of  # noqa: E402

RESULTS = REPO / "bench" / "results"
STATE_DIR = Path(os.environ.get("PIGEONHOLE_STATE_DIR", REPO / ".stack"))
PUBLISHER = "http://127.0.0.1:8080"
SYNC = "http://127.0.0.1:8081"
COPY_CHUNK = 50_000


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(scenario: str, figures: dict[str, Any], details: dict[str, Any] | None = None) -> None:
    """Print the one-line result and write the JSON under bench/results/."""
    line = " ".join(f"{k}={_fmt(v)}" for k, v in figures.items())
    print(f"BENCH {scenario} {line}", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    document = {"scenario": scenario, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "machine": machine(), "figures": figures, "details": details or {}}  # fmt: skip
    (RESULTS / f"{scenario}.json").write_text(json.dumps(document, indent=2, default=str) + "\n")


def _fmt(value: Any) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def admin_token() -> str:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "pigeonhole"), "tokens", "create",
         "--name", f"bench-{uuid.uuid4().hex[:6]}", "--scope", "admin"],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb(pid: int) -> float:
    kib = rss_kib(pid)
    return round(kib / 1024, 1) if kib is not None else float("nan")


def service_pid(name: str) -> int:
    return int((STATE_DIR / "run" / f"{name}.pid").read_text())


async def insert_contacts(
    conn: asyncpg.Connection, ids: list[str], attributes: Callable[[int, str], dict[str, Any]]
) -> float:
    """COPY contacts (a plain connection: jsonb goes as text); return the seconds taken."""
    started = time.monotonic()
    for start in range(0, len(ids), COPY_CHUNK):
        rows = [
            (cid, bucket_of(cid), json.dumps(attributes(i, cid)))
            for i, cid in enumerate(ids[start : start + COPY_CHUNK], start)
        ]
        await conn.copy_records_to_table(
            "contacts", records=rows, columns=["contact_id", "bucket", "attributes"]
        )
    await conn.execute("ANALYZE contacts")
    return time.monotonic() - started


async def delivery_lag(bootstrap: str, group: str) -> int:
    """How many pigeonhole.sends messages the delivery worker has not committed yet."""
    partitions = [TopicPartition(SENDS.name, p) for p in range(SENDS.partitions)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    try:
        ends = await consumer.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
    finally:
        await consumer.stop()
        await admin.close()
    return sum(
        max(0, end - (committed[tp].offset if tp in committed else 0)) for tp, end in ends.items()
    )


async def wait_for_delivery(within: float) -> None:
    settings = DeliverySettings()
    deadline = time.monotonic() + within
    while (lag := await delivery_lag(settings.kafka_bootstrap, settings.consumer_group)) > 0:
        if time.monotonic() > deadline:
            log(f"delivery still {lag} batches behind after {within:.0f} s; going on anyway")
            return
        log(f"  delivery worker {lag} batches behind")
        await asyncio.sleep(5)


async def unlink_matching(redis: aioredis.Redis, pattern: str) -> int:
    """Delete every key matching ``pattern`` (SCAN, in chunks); return how many."""
    deleted, chunk = 0, []
    async for key in redis.scan_iter(match=pattern, count=5000):
        chunk.append(key)
        if len(chunk) >= 5000:
            deleted += await redis.unlink(*chunk)
            chunk = []
    if chunk:
        deleted += await redis.unlink(*chunk)
    return deleted
