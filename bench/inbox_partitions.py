"""The partitioned inbox against the one table it replaced, side by side, and the migration
between them (docs/scaling.md, "The partitioned inbox").

    .venv/bin/python -m bench.inbox_partitions               # N = 650,000 entries, 40 rounds
    .venv/bin/python -m bench.inbox_partitions --n 100000 --rounds 10

Needs the stack's PostgreSQL (nothing else). Builds a throwaway database at migration
0013 holding N entries like the live ones (half stored rendered with a ~600-byte payload,
half by value; three entries a contact; one in fifty an App Inbox entry), copies it
(``TEMPLATE``), and times migrating the copy to the newest schema (0014 partitions it).
Then, alternating between the two databases round after round:

- ``copy_ms``: delivery's ``file_batch`` of a new 1,000-entry batch (one COPY);
- ``redelivery_ms``: the same batch again (the COPY refused, then ON CONFLICT: nothing);
- ``evict_ms``: ``evict_oldest`` for 1,000 contacts with entries;
- ``phone_home_us`` / ``page_us``: sync's phone-home and inbox-page statements for 1,000
  contacts, one connection, the partitioned one with sync's pool settings (generic
  plans); ``*_pg_cpu_us`` is the PostgreSQL backend's CPU per statement, read from
  /proc (PostgreSQL on this machine), wall time per call otherwise.

``BENCH inbox_partitions n=... migration_s=... copy_ms_before=... copy_ms_after=... ...``
(medians over the rounds); bench/results/inbox_partitions.json has every round. The
databases are dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bench.common import log, median, report
from services.delivery.repository import Content, Filing, NewEntry, evict_oldest, file_batch
from services.sync import inbox
from services.sync.repository import POOL_SETTINGS, phone_home
from shared.db import MIGRATIONS_DIR, create_pool, migrate
from shared.settings import CommonSettings

_POPULATE = """
INSERT INTO inbox_entries (send_job_id, contact_id, content_id, kind, app_keys, payload,
                           merge_values, platforms, max_views, expires_at)
SELECT g / $2, 'bench-' || (g % $2), 'content-' || (g % 50),
       CASE WHEN g % 50 = 0 THEN 'inbox' ELSE 'inapp' END, ARRAY['bench-app'],
       CASE WHEN g % 2 = 0 THEN jsonb_build_object(
           'payload', jsonb_build_object('gcm', jsonb_build_object(
               'template', 'default#bottomBanner', 'text', repeat('Hello Ann ', 40)),
               'apns', jsonb_build_object('template', 'default#bottomBanner')))
       END,
       CASE WHEN g % 2 = 1 THEN jsonb_build_object('first_name', 'Ann ' || g) END,
       CASE WHEN g % 2 = 1 THEN 3 END, 1 + g % 3, now() + interval '30 days'
  FROM generate_series(1, $1) AS g
"""
CONTENT = Content("bench-content", "inbox", {}, {}, {}, None, [], None)
TICK = os.sysconf("SC_CLK_TCK")


def _dsn(base: str, name: str) -> str:
    return urlunsplit(urlsplit(base)._replace(path=f"/{name}"))


async def _build(admin: asyncpg.Connection, base: str, n: int) -> tuple[str, str, float]:
    """The two databases (before, after) with the same N entries; the migration's seconds."""
    before, after = (f"bench_inbox_{uuid.uuid4().hex[:8]}" for _ in range(2))
    await admin.execute(f'CREATE DATABASE "{before}"')
    upto = Path(tempfile.mkdtemp())
    for path in MIGRATIONS_DIR.glob("*.sql"):
        if int(path.name[:4]) <= 13:
            shutil.copy(path, upto / path.name)
    await migrate(_dsn(base, before), upto)
    conn = await asyncpg.connect(_dsn(base, before))
    await conn.execute(_POPULATE, n, max(n // 3, 1))
    await conn.execute("VACUUM ANALYZE inbox_entries")
    await conn.close()
    log(f"{n:,} entries at migration 0013")
    await admin.execute(f'CREATE DATABASE "{after}" TEMPLATE "{before}"')
    started = time.monotonic()
    await migrate(_dsn(base, after))
    seconds = time.monotonic() - started
    log(f"migrated a copy to the newest schema in {seconds:.1f} s")
    conn = await asyncpg.connect(_dsn(base, after))
    await conn.execute("ANALYZE inbox_entries")
    await conn.close()
    return before, after, seconds


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


async def _per_call(pool: asyncpg.Pool, pid: int, calls: list[Any]) -> tuple[float, float]:
    """(wall µs, PostgreSQL CPU µs or wall when /proc has no such process) per call."""
    cpu, wall = _cpu_seconds(pid), time.perf_counter()
    for call in calls:
        await call(pool)
    wall = (time.perf_counter() - wall) / len(calls) * 1e6
    after = _cpu_seconds(pid)
    if cpu is None or after is None:
        return wall, wall
    return wall, (after - cpu) / len(calls) * 1e6


async def _round(pool: asyncpg.Pool, pid: int, job: int, contacts: list[str]) -> dict[str, float]:
    entries = [
        NewEntry(f"new-{job}-{i}", None, {"first_name": "Ann"}, 1, None) for i in range(1000)
    ]
    filing = Filing(job, 1, CONTENT, ["bench-app"], False, None, entries)
    timed: dict[str, float] = {}
    for name, step in (
        ("copy_ms", lambda: file_batch(pool, filing)),
        ("redelivery_ms", lambda: file_batch(pool, filing)),
        ("evict_ms", lambda: evict_oldest(pool, contacts, 200)),
    ):
        started = time.perf_counter()
        await step()
        timed[name] = (time.perf_counter() - started) * 1000
    homes = [lambda p, c=c: phone_home(p, c, "bench-app", "gcm", 1) for c in contacts]
    pages = [lambda p, c=c: p.fetch(inbox.PAGE, c, "bench-app", None, 20) for c in contacts]
    timed["phone_home_us"], timed["phone_home_pg_cpu_us"] = await _per_call(pool, pid, homes)
    timed["page_us"], timed["page_pg_cpu_us"] = await _per_call(pool, pid, pages)
    return timed


async def _compare(base: str, before: str, after: str, n: int, rounds: int) -> dict[str, Any]:
    pools = {
        "before": await create_pool(_dsn(base, before), max_size=1),
        "after": await create_pool(_dsn(base, after), max_size=1, server_settings=POOL_SETTINGS),
    }
    contacts = [f"bench-{i}" for i in range(0, max(n // 3, 1), max(n // 3000, 1))][:1000]
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in pools}
    try:
        pids = {
            side: await pool.fetchval("SELECT pg_backend_pid()") for side, pool in pools.items()
        }
        for number in range(rounds):
            for side, pool in pools.items():
                runs[side].append(await _round(pool, pids[side], -(number + 1), contacts))
            log(f"round {number + 1}/{rounds}: " + ", ".join(
                f"{side} copy {runs[side][-1]['copy_ms']:.1f} ms" for side in pools))  # fmt: skip
    finally:
        for pool in pools.values():
            await pool.close()
    return runs


async def main(n: int, rounds: int) -> int:
    base = CommonSettings().database_url
    admin = await asyncpg.connect(base)
    names: list[str] = []
    try:
        before, after, migration_s = await _build(admin, base, n)
        names = [before, after]
        runs = await _compare(base, before, after, n, rounds)
    finally:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    figures: dict[str, Any] = {"n": n, "rounds": rounds, "migration_s": round(migration_s, 2)}
    for key in runs["before"][0]:
        for side in ("before", "after"):
            figures[f"{key}_{side}"] = round(median([r[key] for r in runs[side]]), 1)
    report("inbox_partitions", figures, {"runs": runs})
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=650_000, help="entries (default 650,000)")
    parser.add_argument("--rounds", type=int, default=40, help="rounds (default 40)")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.n, args.rounds)))
