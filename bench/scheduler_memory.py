"""Does the scheduler's memory stay flat however large the audience? Launch a campaign to
an N-contact query source (and, for comparison, to N/10) and sample the scheduler's
resident memory while it schedules, and how fast it schedules: recipients per second and
the scheduler's CPU time per recipient (the cores are shared with delivery, PostgreSQL,
Redis and Kafka, so CPU per recipient is the figure that says what scheduling costs).

    .venv/bin/python bench/scheduler_memory.py              # N = 1,000,000
    .venv/bin/python bench/scheduler_memory.py --n 100000   # a quick run

Needs the stack (`make up`). The contacts are written straight into PostgreSQL with COPY
(the API import would dominate the run); the source, app, content and campaign go through
the publisher API. The stack's scheduler is stopped so that the measured scheduler is the
only one running; each phase starts a fresh ``python -m services.scheduler`` (metrics on a
spare port) and samples VmRSS from /proc/<pid>/status every 0.2 s until the job is
completed; its CPU time (utime + stime, /proc/<pid>/stat) is read at launch and at the
end. Afterwards the benchmark's contacts, inbox entries and Redis inbox versions are
deleted and the stack's scheduler is started again (`deploy/local/services.sh up`).

Figures go to stdout, to bench/results/scheduler_memory.json and to a last line
``BENCH scheduler_memory n=... ratio=...`` where ratio = peak RSS at N / peak RSS at N/10,
``recipients_per_s`` is N over the job's launched_at -> completed_at, and
``cpu_us_per_recipient`` the scheduler's CPU time over that run divided by N.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import (  # noqa: E402
    admin_token,
    insert_contacts,
    log,
    rss_kib,
    unlink_matching,
    wait_for_delivery,
)
from shared.redis_keys import PREFIX  # noqa: E402
from shared.settings import SchedulerSettings  # noqa: E402
from tests.seed_payloads import BOTTOM_BANNER  # noqa: E402
from tests.stack_control import start_stack_services as start_services  # noqa: E402
from tests.stack_control import stop_stack_service  # noqa: E402

PUBLISHER = "http://127.0.0.1:8080"
STATE_DIR = Path(os.environ.get("PIGEONHOLE_STATE_DIR", REPO / ".stack"))
STACK_SCHEDULER_PORT = 9101
BENCH_SCHEDULER_PORT = 19121
RESULTS = REPO / "bench" / "results" / "scheduler_memory.json"
COPY_CHUNK = 50_000
SAMPLE_SECONDS = 0.2
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def stop_stack_scheduler() -> None:
    log("stopping the stack's scheduler")
    stop_stack_service("scheduler")


def start_stack_services() -> None:
    log("starting the stack's scheduler again (deploy/local/services.sh up)")
    start_services()


class Scheduler:
    def __init__(self, log_path: Path) -> None:
        env = {**os.environ, "PIGEONHOLE_METRICS_PORT": str(BENCH_SCHEDULER_PORT)}
        with log_path.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.scheduler"],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.pid = self.process.pid
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"the scheduler exited early; see {log_path}")
            with contextlib.suppress(OSError):
                url = f"http://127.0.0.1:{BENCH_SCHEDULER_PORT}/readyz"
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        break
            if time.monotonic() > deadline:
                raise SystemExit("the benchmark's scheduler was not ready within 60 s")
            time.sleep(0.2)

    def cpu_seconds(self) -> float:
        """User and system CPU time the process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# ---------------------------------------------------------------- data


async def create_campaign(
    api: httpx.AsyncClient, run: str, app_key: str, content_id: str, batch: int
) -> int:
    source = await api.post(
        "/contact-sources",
        json={"name": f"bench-{run}", "query": {"attribute": "run", "op": "eq", "value": run}},
    )
    source.raise_for_status()
    created = await api.post(
        "/campaigns",
        json={
            "name": f"bench scheduler memory {run}",
            "content": {"inAppMessage": {"inAppContentId": content_id}},
            "include": [source.json()["data"]["id"]],
            "appKeys": [app_key],
            "batching": {"recipientsPerBatch": batch, "pauseSeconds": 0},
            "startNow": True,
        },
    )
    if created.status_code != 201:
        raise SystemExit(f"POST /campaigns: {created.status_code} {created.text}")
    job_id: int = created.json()["data"]["id"]
    return job_id


# ---------------------------------------------------------------- one phase


@dataclass
class Phase:
    n: int
    job_id: int = 0
    run: str = ""
    insert_seconds: float = 0.0
    seconds: float = 0.0  # launched_at -> completed_at, as the scheduler recorded them
    batches: int = 0
    recipients: int = 0
    batches_per_s: float = 0.0
    recipients_per_s: float = 0.0
    cpu_seconds: float = 0.0  # the scheduler's, from launch to completion
    cpu_us_per_recipient: float = 0.0
    rss_start_mb: float = 0.0
    rss_median_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_end_mb: float = 0.0
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (t, MB, sent)


def contact_id(run: str, i: int) -> str:
    return f"bm-{run}-{i}"


def mb(kib: int) -> float:
    return round(kib / 1024, 1)


async def run_phase(
    phase: Phase,
    conn: asyncpg.Connection,
    api: httpx.AsyncClient,
    app_key: str,
    content_id: str,
    batch: int,
    log_dir: Path,
) -> None:
    """Insert the phase's contacts, launch, sample until completed, delete the contacts."""
    n = phase.n
    log(f"N={n:,}: inserting contacts (run {phase.run})")
    ids = [contact_id(phase.run, i) for i in range(n)]
    seconds = await insert_contacts(conn, ids, lambda _i, _c: {"run": phase.run})
    phase.insert_seconds = round(seconds, 1)
    log(f"N={n:,}: {n:,} contacts in {phase.insert_seconds} s; starting a scheduler")
    scheduler = Scheduler(log_dir / f"scheduler-{n}.log")
    try:
        await asyncio.sleep(2)  # let it settle after start-up
        start_kib = rss_kib(scheduler.pid) or 0
        start_cpu = scheduler.cpu_seconds()
        phase.job_id = await create_campaign(api, phase.run, app_key, content_id, batch)
        log(f"N={n:,}: campaign {phase.job_id} launched; sampling pid {scheduler.pid}")
        kibs: list[int] = []
        t0 = time.monotonic()
        last_report = t0
        while True:
            kib = rss_kib(scheduler.pid)
            if kib is None:
                raise SystemExit(f"the scheduler died; see {log_dir}")
            row = await conn.fetchrow(
                "SELECT status, recipients_sent FROM send_jobs WHERE id = $1", phase.job_id
            )
            assert row is not None
            kibs.append(kib)
            phase.samples.append((round(time.monotonic() - t0, 2), mb(kib), row[1]))
            if row[0] == "completed":
                break
            if time.monotonic() - last_report > 10:
                log(f"  {row[1]:,} sent, RSS {mb(kib)} MB")
                last_report = time.monotonic()
            await asyncio.sleep(SAMPLE_SECONDS)
        end_kib = rss_kib(scheduler.pid) or kibs[-1]
        phase.cpu_seconds = round(scheduler.cpu_seconds() - start_cpu, 2)
    finally:
        scheduler.stop()
    # from here on delivery skips this run's recipients as unknown: the backlog drains fast
    deleted = await conn.execute("DELETE FROM contacts WHERE attributes->>'run' = $1", phase.run)
    log(f"N={n:,}: the run's contacts deleted ({deleted})")
    job = await conn.fetchrow(
        """SELECT extract(epoch FROM completed_at - launched_at) AS seconds, batches_sent,
                  recipients_sent, recipients_total FROM send_jobs WHERE id = $1""",
        phase.job_id,
    )
    assert job is not None
    if job["recipients_sent"] != n or job["recipients_total"] != n:
        raise SystemExit(f"job {phase.job_id}: {dict(job)}, expected {n} recipients")
    phase.seconds = round(float(job["seconds"]), 2)
    phase.batches, phase.recipients = job["batches_sent"], job["recipients_sent"]
    phase.batches_per_s = round(phase.batches / phase.seconds, 1)
    phase.recipients_per_s = round(phase.recipients / phase.seconds)
    phase.cpu_us_per_recipient = round(phase.cpu_seconds / phase.recipients * 1e6, 2)
    phase.rss_start_mb, phase.rss_end_mb = mb(start_kib), mb(end_kib)
    phase.rss_median_mb = mb(int(statistics.median(kibs)))
    phase.rss_peak_mb = mb(max(kibs))
    log(
        f"N={n:,}: {phase.seconds} s, {phase.recipients_per_s:,} recipients/s, "
        f"CPU {phase.cpu_seconds} s ({phase.cpu_us_per_recipient} µs a recipient), RSS start "
        f"{phase.rss_start_mb} MB, median {phase.rss_median_mb}, peak {phase.rss_peak_mb}, "
        f"end {phase.rss_end_mb}"
    )


# ---------------------------------------------------------------- clean-up


async def clean_up(conn: asyncpg.Connection, phases: list[Phase], redis_url: str) -> None:
    for phase in phases:  # already done unless a phase failed
        await conn.execute("DELETE FROM contacts WHERE attributes->>'run' = $1", phase.run)
    await wait_for_delivery(within=900)
    redis = aioredis.from_url(redis_url)
    try:
        for phase in phases:
            if phase.job_id:
                deleted = await conn.execute(
                    "DELETE FROM inbox_entries WHERE send_job_id = $1", phase.job_id
                )
                log(f"job {phase.job_id}: inbox entries {deleted}")
            keys = await unlink_matching(redis, f"{PREFIX}:inbox:{{bm-{phase.run}-*")
            log(f"run {phase.run}: {keys} Redis inbox versions deleted")
    finally:
        await redis.aclose()


# ---------------------------------------------------------------- main


async def main(n: int, batch: int) -> int:
    settings = SchedulerSettings()
    log_dir = STATE_DIR / "logs" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    conn: asyncpg.Connection = await asyncpg.connect(settings.database_url)
    phases: list[Phase] = []
    headers = {"Authorization": f"Bearer {admin_token()}"}
    try:
        async with httpx.AsyncClient(base_url=PUBLISHER, headers=headers, timeout=60) as api:
            app = await api.post("/apps", json={"name": f"bench-{uuid.uuid4().hex[:6]}"})
            app.raise_for_status()
            content = await api.post("/channels/push/inappcontent", json=BOTTOM_BANNER)
            content.raise_for_status()
            app_key, content_id = app.json()["data"]["appKey"], content.json()["data"]["id"]
            stop_stack_scheduler()
            try:
                for size in (max(1, n // 10), n):
                    phases.append(Phase(n=size, run=uuid.uuid4().hex[:12]))
                    await run_phase(phases[-1], conn, api, app_key, content_id, batch, log_dir)
            finally:
                start_stack_services()
    finally:
        try:
            await clean_up(conn, phases, settings.redis_url)
        finally:
            await conn.close()

    small, large = phases
    ratio = round(large.rss_peak_mb / small.rss_peak_mb, 3)
    result: dict[str, Any] = {
        "benchmark": "scheduler_memory",
        "n": n,
        "recipients_per_batch": batch,
        "seconds": large.seconds,
        "batches_per_s": large.batches_per_s,
        "recipients_per_s": large.recipients_per_s,
        "cpu_seconds": large.cpu_seconds,
        "cpu_us_per_recipient": large.cpu_us_per_recipient,
        "rss_start_mb": large.rss_start_mb,
        "rss_median_mb": large.rss_median_mb,
        "rss_peak_mb": large.rss_peak_mb,
        "rss_end_mb": large.rss_end_mb,
        "rss_peak_small_mb": small.rss_peak_mb,
        "ratio": ratio,
        "phases": [
            {k: v for k, v in asdict(p).items() if k not in ("samples", "run")} for p in phases
        ],
        "samples": {str(p.n): p.samples for p in phases},
        "host": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    log(f"written {RESULTS.relative_to(REPO)}")
    print(
        f"BENCH scheduler_memory n={n} seconds={large.seconds} "
        f"recipients_per_s={large.recipients_per_s} cpu_seconds={large.cpu_seconds} "
        f"cpu_us_per_recipient={large.cpu_us_per_recipient} rss_start_mb={large.rss_start_mb} "
        f"rss_peak_mb={large.rss_peak_mb} rss_peak_small_mb={small.rss_peak_mb} ratio={ratio}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=1_000_000, help="audience size (default 1M)")
    parser.add_argument("--batch", type=int, default=1000, help="recipients per batch")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.n, args.batch)))
