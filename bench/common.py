"""Shared pieces of the benchmarks: the stack's API and data, processes, results.

Completion signal: a run is done when the publisher's statistics (``stats_outcomes``, a
few rows per send job, fed by the delivery worker's BatchDelivered events, which it emits
after the batch's entries are committed) hold an outcome for every recipient. Polling it
costs the same at the first recipient and the millionth, unlike a ``count(*)`` over the
job's inbox entries, which grows with the rows filed and competes with the filing. The
exact count of filed entries is taken once, after the clock has stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
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
OUTCOME_POLL_SECONDS = 0.25


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


async def wait_for_delivery(within: float, poll: float = 5.0, quiet: bool = False) -> None:
    """Wait until the delivery workers have committed every SendBatch on the topic: after
    that, no rebalance can hand a batch of a finished run to a worker again (which would
    file its entries anew once a benchmark has deleted them)."""
    settings = DeliverySettings()
    deadline = time.monotonic() + within
    while (lag := await delivery_lag(settings.kafka_bootstrap, settings.consumer_group)) > 0:
        if time.monotonic() > deadline:
            log(f"delivery still {lag} batches behind after {within:.0f} s; going on anyway")
            return
        if not quiet:
            log(f"  delivery worker {lag} batches behind")
        await asyncio.sleep(poll)


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


async def outcomes_of(conn: asyncpg.Connection, job_id: int) -> dict[str, int]:
    """The job's recipients by outcome ('delivered' or a skip reason), as statistics hold them."""
    rows = await conn.fetch(
        "SELECT outcome, count FROM stats_outcomes WHERE send_job_id = $1", job_id
    )
    return {r["outcome"]: r["count"] for r in rows}


async def wait_for_outcomes(
    conn: asyncpg.Connection,
    job_id: int,
    n: int,
    within: float,
    started: float,
    each_poll: Callable[[], object] = lambda: None,
) -> dict[str, int]:
    """Return once every one of the job's ``n`` recipients has an outcome; exit (non-zero,
    saying how far it got) if any was skipped or if ``within`` seconds after ``started``
    (a monotonic time) some have none yet. ``each_poll`` runs before every poll."""
    while True:
        each_poll()
        outcomes = await outcomes_of(conn, job_id)
        decided = sum(outcomes.values())
        if decided >= n:
            if outcomes.get("delivered", 0) != n or decided != n:
                raise SystemExit(f"job {job_id}: {n:,} recipients, outcomes {outcomes}")
            return outcomes
        if time.monotonic() - started > within:
            raise SystemExit(
                f"job {job_id}: {decided:,} of {n:,} recipients decided after {within:.0f} s "
                f"(time limit; outcomes so far {outcomes})"
            )
        await asyncio.sleep(OUTCOME_POLL_SECONDS)


async def assert_filed_once(conn: asyncpg.Connection, job_id: int, n: int) -> None:
    """Every recipient of the job has exactly one inbox entry (one count, after the clock)."""
    row = await conn.fetchrow(
        """SELECT count(*) AS entries, count(DISTINCT contact_id) AS contacts
           FROM inbox_entries WHERE send_job_id = $1""",
        job_id,
    )
    assert row is not None
    if row["entries"] != n or row["contacts"] != n:
        raise SystemExit(
            f"job {job_id}: {row['entries']:,} inbox entries for {row['contacts']:,} "
            f"contacts; expected exactly one for each of {n:,}"
        )


async def wal_position(conn: asyncpg.Connection) -> dict[str, Any]:
    """PostgreSQL's WAL and buffer-write counters: their difference over a run is the WAL
    it wrote, the share of that in full-page images, how often a backend waited for WAL
    buffers to be written out (``wal_buffers_full``), the data pages backends had to write
    themselves (``buffers_backend``: shared_buffers full of dirty pages) and the
    checkpoints taken (``requested``: max_wal_size was reached, or one was forced, e.g. by a
    test creating or dropping a database on this shared machine). ``wal`` is the LSN range, for
    ``pg_waldump --stats`` (see deploy/README.md)."""
    row = await conn.fetchrow(
        """SELECT pg_current_wal_lsn()::text AS lsn,
                  pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS wal_bytes,
                  w.wal_fpi, w.wal_buffers_full, b.buffers_backend,
                  b.checkpoints_timed AS timed, b.checkpoints_req AS requested
           FROM pg_stat_wal w, pg_stat_bgwriter b"""
    )
    assert row is not None
    return dict(row)


def wal_since(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    delta = {key: after[key] - before[key] for key in before if key != "lsn"}
    return {
        "wal": f"{before['lsn']}..{after['lsn']}",
        "wal_mb": round(delta["wal_bytes"] / 2**20, 1),
        "wal_full_page_images": delta["wal_fpi"],
        "wal_buffers_full": delta["wal_buffers_full"],
        "buffers_written_by_backends": delta["buffers_backend"],
        "checkpoints_requested": delta["requested"],
        "checkpoints_timed": delta["timed"],
    }


async def redis_position(redis: aioredis.Redis) -> dict[str, int]:
    """Redis's persistence counters: over a run, the AOF it appended, and the AOF rewrites
    and RDB snapshots (each a fork and a child writing the whole dataset) it took."""
    info = await redis.info("persistence")
    return {key: int(info.get(key, 0)) for key in ("aof_current_size", "aof_rewrites", "rdb_saves")}


def redis_since(before: dict[str, int], after: dict[str, int]) -> dict[str, float]:
    """The AOF growth is the size difference, unless a rewrite shrank the file meanwhile."""
    return {
        "aof_mb": round((after["aof_current_size"] - before["aof_current_size"]) / 2**20, 1),
        "aof_rewrites": after["aof_rewrites"] - before["aof_rewrites"],
        "rdb_snapshots": after["rdb_saves"] - before["rdb_saves"],
    }


def http_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def recipient_counts(port: int) -> dict[str, float]:
    """A delivery worker's recipients since it started, by outcome ('delivered') or skip
    reason ('duplicate': filed before, e.g. a batch handed over again), from its /metrics;
    empty if it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return {}
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("pigeonhole_delivery_recipients_total{"):
            labels, value = line.rsplit(" ", 1)
            outcome = labels.split('outcome="', 1)[1].split('"', 1)[0]
            reason = labels.split('reason="', 1)[1].split('"', 1)[0] if "reason=" in labels else ""
            counts[reason or outcome] = float(value)
    return counts


async def group_members(bootstrap: str, group: str) -> tuple[str, int]:
    """The consumer group's state (e.g. 'Stable') and how many members it has."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    _error, _group, state, _kind, _protocol, members = response.groups[0]
    return str(state), len(members)


class ExtraDeliveryWorker:
    """One more delivery worker in the stack's consumer group, started as
    deploy/local/services.sh starts the stack's own (``python -m services.delivery``) but
    with its own web port and data dir, logging to ``.stack/logs/<name>.log``; stopped
    (SIGTERM, SIGKILL after 20 s) when the block ends, the group then back to the others."""

    def __init__(self, name: str, port: int, within: float = 90.0) -> None:
        self.name, self.port, self.within = name, port, within
        self.settings = DeliverySettings()
        self.process: asyncio.subprocess.Process | None = None
        self.members_before = 0

    async def __aenter__(self) -> ExtraDeliveryWorker:
        if http_ready(self.port):
            raise SystemExit(f"port {self.port} already serves something; pick another")
        group = (self.settings.kafka_bootstrap, self.settings.consumer_group)
        _, self.members_before = await group_members(*group)
        python = REPO / ".venv" / "bin" / "python"
        env = {**os.environ, "PIGEONHOLE_WEB_PORT": str(self.port),
               "PIGEONHOLE_DATA_DIR": str(STATE_DIR / self.name)}  # fmt: skip
        log_path = STATE_DIR / "logs" / f"{self.name}.log"
        with log_path.open("ab") as output:
            self.process = await asyncio.create_subprocess_exec(
                str(python if python.exists() else sys.executable), "-m", "services.delivery",
                cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=output,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        log(f"{self.name}: pid {self.process.pid}, web port {self.port}, log {log_path}")
        deadline = time.monotonic() + self.within
        while not http_ready(self.port):
            if self.process.returncode is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace").splitlines()[-20:]
                await self.__aexit__()
                raise SystemExit(f"{self.name} did not get ready:\n" + "\n".join(tail))
            await asyncio.sleep(0.5)
        if not await self._settled(self.members_before + 1, deadline):
            await self.__aexit__()
            raise SystemExit(f"{self.name}: the consumer group did not take it in")
        return self

    async def _settled(self, members: int, deadline: float) -> bool:
        """Wait until the group is stable with ``members`` members (partitions reassigned)."""
        group = (self.settings.kafka_bootstrap, self.settings.consumer_group)
        while (answer := await group_members(*group)) != ("Stable", members):
            if time.monotonic() > deadline:
                log(f"consumer group {group[1]}: {answer}, not stable with {members} members")
                return False
            await asyncio.sleep(0.5)
        log(f"consumer group {group[1]}: stable with {members} members")
        return True

    async def __aexit__(self, *_: object) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), 20)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        log(f"{self.name}: stopped (exit {self.process.returncode})")
        self.process = None
        await self._settled(self.members_before, time.monotonic() + self.within)


# Which part of the stack a process belongs to, by its command line (first match wins).
_PARTS = (
    ("delivery", "services.delivery"), ("scheduler", "services.scheduler"),
    ("publisher", "services.publisher"), ("sync", "services.sync"),
    ("postgres", "postgres"), ("redis", "redis-server"), ("kafka", "java"),
    ("load", "wrk"),  # the load generator of bench/sync_load
)  # fmt: skip


def cpu_seconds_by_part() -> dict[str, float]:
    """CPU seconds (user + system) used so far by the stack's processes, summed by part
    (every PostgreSQL backend counts as postgres), plus ``other``: whatever else ran on
    the machine (another benchmark, a test run). From /proc; empty where there is none."""
    ticks = os.sysconf("SC_CLK_TCK")
    totals: dict[str, float] = {}
    for entry in Path("/proc").iterdir() if Path("/proc/self/stat").exists() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :]
        values = fields.split()
        used = (int(values[11]) + int(values[12])) / ticks
        part = next((p for p, marker in _PARTS if marker in command or marker == name), "other")
        if entry.name == str(os.getpid()):
            part = "bench"
        totals[part] = totals.get(part, 0.0) + used
    return totals


def cpu_since(before: dict[str, float]) -> dict[str, float]:
    """CPU seconds by part since ``before`` (processes that ended meanwhile are not counted)."""
    now = cpu_seconds_by_part()
    return {part: round(max(now[part] - before.get(part, 0.0), 0.0), 2) for part in sorted(now)}
