"""Sync benchmark: /v1/sync under load from a separate process (wrk), on the "new
messages" and "nothing new" paths, against a floor measured in the same run.

    .venv/bin/python bench/sync_load.py                   # 100,000 contacts x 20 messages
    .venv/bin/python bench/sync_load.py --contacts 5000 --duration 3 --repeat 1   # quick

Setup writes the inbox entries straight into PostgreSQL as delivery files them (the
content id and the recipient's merge-tag texts; this measures sync, not delivery) and
sets each contact's inbox version in Redis, from which the "nothing new" cursors are
formed exactly as sync forms them. The floor is a bare ASGI app on the same server stack
(uvicorn, as many worker processes as the running sync service has) returning a fixed
body of the same size; the headline is ratio = sync rps / floor rps at the same
concurrency. ``--workers N`` other than the running sync's count measures a sync of the
benchmark's own with N processes on port 18081 (the stack's is left alone). One line per
path and concurrency:

    BENCH sync path=nothing_new concurrency=16 workers=1 rps=... p50_ms=... p99_ms=...
          floor_rps=... ratio=... errors=...

then the summary line of every figure (also written to bench/results/sync.json).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    PUBLISHER,
    REPO,
    STATE_DIR,
    SYNC,
    admin_token,
    http_ready,
    median,
    report,
)
from shared.personalization.stored import platform_bits
from shared.redis_keys import inbox_version
from shared.settings import CommonSettings
from tests.seed_payloads import BOTTOM_BANNER

FLOOR_PORT = 18089
OWN_SYNC_PORT = 18081  # a sync of the benchmark's own (--workers other than the stack's)
PATHS = {"new": "new_messages", "same": "nothing_new"}


def sync_workers() -> int:
    """How many processes serve the running sync service (its children, else itself)."""
    try:
        pid = int((STATE_DIR / "run" / "sync.pid").read_text())
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (OSError, ValueError):
        return 1
    return max(1, len(children))


class SyncServer:
    """A sync service of the benchmark's own: ``python -m services.sync --workers N`` on
    ``port`` (N processes sharing it, as services.sh starts the stack's with
    PIGEONHOLE_SYNC_WORKERS), logging to .stack/logs/sync-bench-<port>.log; stopped when
    the block ends. The stack's sync keeps serving the devices of everyone else."""

    def __init__(self, workers: int, port: int) -> None:
        self.workers, self.port = workers, port
        self.url = f"http://127.0.0.1:{port}"
        self.metrics = Path(tempfile.mkdtemp(prefix="ph-bench-sync-metrics-"))
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SyncServer:
        env = {**os.environ, "PIGEONHOLE_PORT": str(self.port),
               "PROMETHEUS_MULTIPROC_DIR": str(self.metrics)}  # fmt: skip
        log = (STATE_DIR / "logs" / f"sync-bench-{self.port}.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.sync", "--workers", str(self.workers)],
            cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not http_ready(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise SystemExit(f"bench: sync with {self.workers} processes did not start")
            time.sleep(0.2)
        time.sleep(1.0)  # every process up, not only the first
        return self

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)
            self.process = None
        shutil.rmtree(self.metrics, ignore_errors=True)


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("bench: installing wrk (apt)", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True)
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)
    return shutil.which("wrk") or "wrk"


async def setup(contacts: int, pending: int) -> dict[str, Any]:
    settings = CommonSettings()
    headers = {"Authorization": f"Bearer {admin_token()}"}
    async with httpx.AsyncClient(base_url=PUBLISHER, headers=headers, timeout=60) as api:
        app = (await api.post("/apps", json={"name": "bench-sync"})).json()["data"]
        content_id = (await api.post("/channels/push/inappcontent", json=BOTTOM_BANNER)).json()[
            "data"
        ]["id"]
    run = uuid.uuid4().hex[:8]
    ids = [f"bs-{run}-{i}" for i in range(contacts)]
    values = json.dumps({"first_name": "Michael"})  # what delivery keeps of the recipient
    conn = await asyncpg.connect(settings.database_url)
    try:
        started = time.monotonic()
        await conn.execute(
            """INSERT INTO inbox_entries (send_job_id, contact_id, content_id, kind, app_keys,
                                          merge_values, platforms, max_views, expires_at)
               SELECT -m, c, $2, 'inapp', ARRAY[$3], $4::jsonb, $6, 3, now() + interval '1 day'
                 FROM unnest($1::text[]) AS c, generate_series(1, $5) AS m""",
            ids, content_id, app["appKey"], values, pending, platform_bits(BOTTOM_BANNER),
        )  # fmt: skip
        print(f"bench: {contacts * pending} inbox entries in {time.monotonic() - started:.1f}s")
    finally:
        await conn.close()
    redis = aioredis.from_url(settings.redis_url)
    version = int(time.time() * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        for contact_id in ids:
            pipe.set(inbox_version(contact_id), version)
        await pipe.execute()
    await redis.aclose()
    exp = int(time.time()) + 3600
    tokens = [jwt.encode({"sub": c, "exp": exp}, app["appSecret"], algorithm="HS256") for c in ids]
    return {"app": app, "run": run, "ids": ids, "tokens": tokens, "version": version}


def wrk(
    binary: str, url: str, lines: Path, app_key: str, concurrency: int, seconds: float
) -> dict[str, Any]:
    threads = min(2, concurrency)
    env = {**os.environ, "PH_APP_KEY": app_key}
    done = subprocess.run(
        [binary, f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--latency",
         "-s", str(REPO / "bench" / "sync_wrk.lua"), url, "--", str(lines)],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    line = next(x for x in done.stdout.splitlines() if x.startswith("WRK "))
    result: dict[str, Any] = json.loads(line[4:])
    result["rps"] = result["requests"] / result["seconds"]
    return result


def body_size(url: str, headers: dict[str, str], cursor: str | None, pending: int) -> int:
    body = {"platform": "gcm", **({"cursor": cursor} if cursor else {})}
    answer = httpx.post(f"{url}/v1/sync", json=body, headers=headers)
    answer.raise_for_status()
    if cursor is None and len(answer.json()["messages"]) != pending:
        raise SystemExit(f"bench: sync returned {len(answer.json()['messages'])} of {pending}")
    return len(answer.content)


def start_floor(body_bytes: int, workers: int) -> subprocess.Popen[bytes]:
    floor = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "floor_app.py")],
        env={**os.environ, "FLOOR_PORT": str(FLOOR_PORT), "FLOOR_BODY_BYTES": str(body_bytes),
             "FLOOR_WORKERS": str(workers)},
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.post(f"http://127.0.0.1:{FLOOR_PORT}/", content=b"{}").raise_for_status()
            time.sleep(1.0)  # every worker up, not only the first
            return floor
        except httpx.HTTPError:
            time.sleep(0.2)
    floor.terminate()
    raise SystemExit("bench: the floor app did not start")


def measure(binary: str, args: argparse.Namespace, data: dict[str, Any]) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="ph-bench-"))
    new_file, same_file = tmp / "new.txt", tmp / "same.txt"
    new_file.write_text("".join(f"{t} -\n" for t in data["tokens"]))
    same_file.write_text("".join(f"{t} gcm.{data['version']}\n" for t in data["tokens"]))
    key = data["app"]["appKey"]
    first = {"X-App-Key": key, "Authorization": f"Bearer {data['tokens'][0]}"}
    sync = args.sync_url
    sizes = {"new": body_size(sync, first, None, args.pending),
             "same": body_size(sync, first, f"gcm.{data['version']}", args.pending)}  # fmt: skip
    results: dict[str, Any] = {}
    if args.warmup:  # devices that phoned home before: their tokens are verified already
        wrk(binary, sync, same_file, key, max(args.concurrency), args.warmup)
    for path, lines in (("new", new_file), ("same", same_file)):
        floor = start_floor(sizes[path], args.workers)
        try:
            for concurrency in args.concurrency:
                runs: dict[str, list[dict[str, Any]]] = {"sync": [], "floor": []}
                for _ in range(args.repeat):  # side by side, alternating
                    runs["sync"].append(wrk(binary, sync, lines, key, concurrency, args.duration))
                    runs["floor"].append(wrk(binary, f"http://127.0.0.1:{FLOOR_PORT}", lines, key,
                                             concurrency, args.duration))  # fmt: skip
                sides = {
                    side: {m: median([r[m] for r in rs]) for m in ("rps", "p50_ms", "p99_ms")}
                    | {"errors": sum(r["errors"] for r in rs)}
                    for side, rs in runs.items()
                }
                results[f"{path}_c{concurrency}"] = sides
                print_path(PATHS[path], concurrency, args.workers, sides)
        finally:
            floor.terminate()
            floor.wait()
    return {"sizes": sizes, "results": results}


def print_path(path: str, concurrency: int, workers: int, sides: dict[str, Any]) -> None:
    sync, floor = sides["sync"], sides["floor"]
    ratio = sync["rps"] / floor["rps"] if floor["rps"] else 0.0
    print(f"BENCH sync path={path} concurrency={concurrency} workers={workers} "
          f"rps={sync['rps']:.0f} p50_ms={sync['p50_ms']:.2f} p99_ms={sync['p99_ms']:.2f} "
          f"floor_rps={floor['rps']:.0f} ratio={ratio:.3f} errors={sync['errors']}",
          flush=True)  # fmt: skip


async def cleanup(data: dict[str, Any]) -> None:
    conn = await asyncpg.connect(CommonSettings().database_url)
    try:
        await conn.execute("DELETE FROM inbox_entries WHERE contact_id = ANY($1)", data["ids"])
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", "--n", type=int, default=100_000)
    parser.add_argument("--pending", type=int, default=20)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")],
                        default=[16, 64])  # fmt: skip
    parser.add_argument("--workers", type=int, default=None,
                        help="sync processes (and the floor app's): by default those of the "
                             "running sync service (PIGEONHOLE_SYNC_WORKERS); another number "
                             f"starts a sync of the benchmark's own on port {OWN_SYNC_PORT}"
                             )  # fmt: skip
    parser.add_argument(
        "--warmup",
        type=float,
        default=0,
        help="seconds of untimed 'nothing new' phone homes first, so that tokens are "
        "verified already as for devices that phoned home before (default 0: none)",
    )
    parser.add_argument(
        "--sync-url",
        default=SYNC,
        help="another sync server to measure (then --workers is not checked)",
    )
    args = parser.parse_args()
    running = sync_workers() if args.sync_url == SYNC else args.workers or 1
    own = args.workers is not None and args.workers != running and args.sync_url == SYNC
    if args.workers is None:
        args.workers = running
    binary = ensure_wrk()
    data = asyncio.run(setup(args.contacts, args.pending))
    try:
        with contextlib.ExitStack() as stack:
            if own:  # the stack's sync runs another count: measure a sync of our own
                args.sync_url = stack.enter_context(SyncServer(args.workers, OWN_SYNC_PORT)).url
            measured = measure(binary, args, data)
    finally:
        asyncio.run(cleanup(data))
    figures: dict[str, Any] = {
        "contacts": args.contacts, "pending": args.pending, "workers": args.workers
    }  # fmt: skip
    for name, sides in measured["results"].items():
        sync, floor = sides["sync"], sides["floor"]
        figures[f"{name}_rps"] = round(sync["rps"])
        figures[f"{name}_p50_ms"] = round(sync["p50_ms"], 2)
        figures[f"{name}_p99_ms"] = round(sync["p99_ms"], 2)
        figures[f"{name}_floor_rps"] = round(floor["rps"])
        figures[f"{name}_ratio"] = round(sync["rps"] / floor["rps"], 3) if floor["rps"] else 0.0
        figures[f"{name}_errors"] = sync["errors"]
    report("sync", figures, {"body_bytes": measured["sizes"], "args": vars(args)})


if __name__ == "__main__":
    main()
