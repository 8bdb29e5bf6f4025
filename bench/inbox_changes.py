"""What delta sync costs (docs/architecture.md, "Delta sync"): delivery's writes with and
without migration 0017 (the ``change_xid`` default and the row trigger), and the
PostgreSQL time of one ``GET /v1/inbox/changes`` on a contact with 200 entries.

    .venv/bin/python -m bench.inbox_changes               # N = 300,000 entries, 20 rounds
    .venv/bin/python -m bench.inbox_changes --n 100000 --rounds 10

Needs the stack's PostgreSQL (nothing else). Builds a throwaway database at migration
0016 holding N entries (as bench/inbox_partitions.py does), copies it (``TEMPLATE``) and
migrates the copy to 0017 (timed: no rewrite, so it takes milliseconds). Then, alternating
between the two round after round:

- ``copy_ms``: delivery's ``file_batch`` of a new 1,000-entry batch (one COPY; 0017 adds
  the column's default, ``pg_current_xact_id()``, for every row);
- ``update_ms``: one UPDATE of those 1,000 entries (``views + 1``; 0017 adds the trigger);

and, on the 0017 copy only, for 20 contacts with 200 App Inbox entries each, sync's
``CHANGES`` statement with sync's pool settings: ``full`` (no cursor: 200 entries),
``none`` (a cursor, nothing changed), ``ten`` (10 entries changed since the cursor):
wall µs per call and PostgreSQL's CPU µs (from /proc, as bench/inbox_partitions.py).

``BENCH inbox_changes n=... migration_ms=... copy_ms_before=... copy_ms_after=...
update_ms_before=... update_ms_after=... changes_full_pg_cpu_us=... ...`` (medians).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import log, median, report
from bench.inbox_partitions import _POPULATE, CONTENT, _dsn, _per_call
from services.delivery.repository import Filing, NewEntry, file_batch
from services.sync.changes import CHANGES
from services.sync.repository import POOL_SETTINGS
from shared.db import MIGRATIONS_DIR, create_pool, migrate
from shared.settings import CommonSettings

DELTA_CONTACTS = [f"bench-delta-{i}" for i in range(20)]
_INBOXES = """
INSERT INTO inbox_entries (send_job_id, contact_id, content_id, kind, app_keys, payload)
SELECT -1000000 - g, c, 'bench-content', 'inbox', ARRAY['bench-app'],
       jsonb_build_object('title', 'Hello ' || g, 'text', repeat('Hi Ann ', 20))
  FROM unnest($1::text[]) AS c, generate_series(1, 200) AS g
"""


async def _build(admin: asyncpg.Connection, base: str, n: int) -> tuple[str, str, float]:
    before, after = (f"bench_changes_{uuid.uuid4().hex[:8]}" for _ in range(2))
    await admin.execute(f'CREATE DATABASE "{before}"')
    upto = Path(tempfile.mkdtemp())
    for path in MIGRATIONS_DIR.glob("*.sql"):
        if int(path.name[:4]) <= 16:
            shutil.copy(path, upto / path.name)
    await migrate(_dsn(base, before), upto)
    conn = await asyncpg.connect(_dsn(base, before))
    await conn.execute(_POPULATE, n, max(n // 3, 1))
    await conn.execute(_INBOXES, DELTA_CONTACTS)
    await conn.execute("VACUUM ANALYZE inbox_entries")
    await conn.close()
    await admin.execute(f'CREATE DATABASE "{after}" TEMPLATE "{before}"')
    started = time.monotonic()
    await migrate(_dsn(base, after))
    seconds = time.monotonic() - started
    log(f"{n:,} entries; migrated a copy to 0017 in {seconds * 1000:.0f} ms")
    return before, after, seconds


async def _writes(pool: asyncpg.Pool, job: int) -> dict[str, float]:
    entries = [
        NewEntry(f"new-{job}-{i}", None, {"first_name": "Ann"}, 1, None) for i in range(1000)
    ]
    filing = Filing(job, 1, CONTENT, ["bench-app"], False, None, entries)
    timed: dict[str, float] = {}
    started = time.perf_counter()
    await file_batch(pool, filing)
    timed["copy_ms"] = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    await pool.execute("UPDATE inbox_entries SET views = views + 1 WHERE send_job_id = $1", job)
    timed["update_ms"] = (time.perf_counter() - started) * 1000
    return timed


async def _changes(pool: asyncpg.Pool, pid: int) -> dict[str, float]:
    cursors = {}
    for contact in DELTA_CONTACTS:
        row = (await pool.fetch(CHANGES, contact, "bench-app", None, 0, None, 201))[0]
        cursors[contact] = (row["next_xid"], row["next_ms"])
    await pool.execute(  # ten entries of each contact changed since its cursor
        """UPDATE inbox_entries SET read_at = now()
            WHERE contact_id = ANY($1) AND send_job_id BETWEEN -1000010 AND -1000001""",
        DELTA_CONTACTS,
    )
    after_ten = await pool.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
    calls = {
        "full": [lambda p, c=c: p.fetch(CHANGES, c, "bench-app", None, 0, None, 201)
                 for c in DELTA_CONTACTS],
        "ten": [lambda p, c=c: p.fetch(CHANGES, c, "bench-app", *cursors[c], None, 201)
                for c in DELTA_CONTACTS],
        "none": [lambda p, c=c: p.fetch(CHANGES, c, "bench-app", after_ten, cursors[c][1],
                                        None, 201)
                 for c in DELTA_CONTACTS],
    }  # fmt: skip
    timed: dict[str, float] = {}
    for name, batch in calls.items():
        wall, cpu = await _per_call(pool, pid, batch * 5)
        timed[f"changes_{name}_us"], timed[f"changes_{name}_pg_cpu_us"] = wall, cpu
    return timed


async def _compare(base: str, before: str, after: str, rounds: int) -> dict[str, Any]:
    pools = {
        "before": await create_pool(_dsn(base, before), max_size=1, server_settings=POOL_SETTINGS),
        "after": await create_pool(_dsn(base, after), max_size=1, server_settings=POOL_SETTINGS),
    }
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in pools}
    try:
        pid = await pools["after"].fetchval("SELECT pg_backend_pid()")
        for number in range(rounds):
            for side, pool in pools.items():
                runs[side].append(await _writes(pool, -(number + 1)))
            runs["after"][-1].update(await _changes(pools["after"], pid))
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
        runs = await _compare(base, before, after, rounds)
    finally:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    figures: dict[str, Any] = {"n": n, "rounds": rounds, "migration_ms": round(migration_s * 1e3)}
    for key in ("copy_ms", "update_ms"):
        for side in ("before", "after"):
            figures[f"{key}_{side}"] = round(median([r[key] for r in runs[side]]), 2)
    for key in runs["after"][0]:
        if key.startswith("changes_"):
            figures[key] = round(median([r[key] for r in runs["after"]]), 1)
    report("inbox_changes", figures, {"runs": runs})
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=300_000, help="entries (default 300,000)")
    parser.add_argument("--rounds", type=int, default=20, help="rounds (default 20)")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.n, args.rounds)))
