"""Sync benchmark: /v1/sync under load from a separate process (wrk), on the "new
messages" and "nothing new" paths, against a floor measured in the same run.

    .venv/bin/python bench/sync_load.py                   # 100,000 contacts x 20 messages
    .venv/bin/python bench/sync_load.py --contacts 5000 --duration 3 --repeat 1   # quick

Setup writes the inbox entries straight into PostgreSQL (this measures sync, not
delivery) and sets each contact's inbox version in Redis, from which the "nothing new"
cursors are formed exactly as sync forms them. The floor is a bare ASGI app on the same
server stack (uvicorn, one worker) returning a fixed body of the same size; the headline
is ratio = sync rps / floor rps at the same concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
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

from bench.common import PUBLISHER, REPO, SYNC, admin_token, median, report
from shared.redis_keys import inbox_version
from shared.settings import CommonSettings
from tests.seed_payloads import BOTTOM_BANNER

FLOOR_PORT = 18089


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
    payload = json.loads(json.dumps(BOTTOM_BANNER).replace("%%First_Name%%", "Michael"))
    conn = await asyncpg.connect(settings.database_url)
    try:
        started = time.monotonic()
        await conn.execute(
            """INSERT INTO inbox_entries (send_job_id, contact_id, content_id, kind, app_keys,
                                          payload, max_views, expires_at)
               SELECT -m, c, $2, 'inapp', ARRAY[$3], $4::jsonb, 3, now() + interval '1 day'
                 FROM unnest($1::text[]) AS c, generate_series(1, $5) AS m""",
            ids, content_id, app["appKey"], json.dumps(payload), pending,
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


def body_size(url: str, headers: dict[str, str], cursor: str | None) -> int:
    body = {"platform": "gcm", **({"cursor": cursor} if cursor else {})}
    return len(httpx.post(f"{url}/v1/sync", json=body, headers=headers).content)


def measure(binary: str, args: argparse.Namespace, data: dict[str, Any]) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="ph-bench-"))
    new_file, same_file = tmp / "new.txt", tmp / "same.txt"
    new_file.write_text("".join(f"{t} -\n" for t in data["tokens"]))
    same_file.write_text("".join(f"{t} gcm.{data['version']}\n" for t in data["tokens"]))
    key = data["app"]["appKey"]
    first = {"X-App-Key": key, "Authorization": f"Bearer {data['tokens'][0]}"}
    sizes = {"new": body_size(SYNC, first, None),
             "same": body_size(SYNC, first, f"gcm.{data['version']}")}  # fmt: skip
    results: dict[str, Any] = {}
    for path, lines in (("new", new_file), ("same", same_file)):
        floor = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "floor_app.py")],
            env={**os.environ, "FLOOR_PORT": str(FLOOR_PORT), "FLOOR_BODY_BYTES": str(sizes[path])},
        )  # fmt: skip
        try:
            time.sleep(1.5)
            for concurrency in args.concurrency:
                runs: dict[str, list[dict[str, Any]]] = {"sync": [], "floor": []}
                for _ in range(args.repeat):  # side by side, alternating
                    runs["sync"].append(wrk(binary, SYNC, lines, key, concurrency, args.duration))
                    runs["floor"].append(wrk(binary, f"http://127.0.0.1:{FLOOR_PORT}", lines, key,
                                             concurrency, args.duration))  # fmt: skip
                results[f"{path}_c{concurrency}"] = {
                    side: {m: median([r[m] for r in rs]) for m in ("rps", "p50_ms", "p99_ms")}
                    | {"errors": sum(r["errors"] for r in rs)}
                    for side, rs in runs.items()
                }
        finally:
            floor.terminate()
            floor.wait()
    return {"sizes": sizes, "results": results}


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
    args = parser.parse_args()
    binary = ensure_wrk()
    data = asyncio.run(setup(args.contacts, args.pending))
    try:
        measured = measure(binary, args, data)
    finally:
        asyncio.run(cleanup(data))
    figures: dict[str, Any] = {"contacts": args.contacts, "pending": args.pending}
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
