"""Fan-out: a campaign to N contacts, from start until every inbox entry is in PostgreSQL
and visible to sync, against a floor measured in the same run.

    .venv/bin/python -m bench.fanout                    # N = 1,000,000, one repetition
    .venv/bin/python -m bench.fanout --n 100000 --repeat 3

Each contact has attributes used by the content's merge tags. The campaign counts toward
the app's frequency limits (generous, so nobody is capped), so every recipient takes the
full path: scheduler -> Kafka -> delivery (contacts, personalization, cap script, inbox
INSERT, inbox version) -> outcome. The stack's own scheduler and delivery worker do the
work; their peak RSS is sampled every 0.5 s.

The floor is what the same end state costs with no pipeline at all: one COPY of N
personalized inbox rows, plus the same cap script for N recipients, pipelined in chunks.
ratio = seconds / floor_seconds.
"""

from __future__ import annotations

import argparse
import asyncio
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
    admin_token,
    insert_contacts,
    log,
    median,
    report,
    rss_mb,
    service_pid,
    unlink_matching,
    wait_for_delivery,
)
from services.delivery.caps import FrequencyCaps, app_caps
from shared.settings import CommonSettings
from tests.seed_payloads import BOTTOM_BANNER

LIMITS = {"perDay": 1000}


class Sampler:
    """Peak RSS of the stack's scheduler and delivery worker while a run goes on."""

    def __init__(self) -> None:
        self.pids = {name: service_pid(name) for name in ("scheduler", "delivery")}
        self.peak = dict.fromkeys(self.pids, 0.0)
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], rss_mb(pid))
            await asyncio.sleep(0.5)

    def __enter__(self) -> Sampler:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def campaign_run(
    api: httpx.AsyncClient,
    conn: asyncpg.Connection,
    source: int,
    app: dict[str, str],
    content_id: str,
    n: int,
) -> dict[str, Any]:
    body = {"name": "bench fanout", "content": {"inAppMessage": {"inAppContentId": content_id}},
            "include": [source], "appKeys": [app["appKey"]], "usingAppFrequency": True,
            "startNow": True, "batching": {"recipientsPerBatch": 1000}}  # fmt: skip
    with Sampler() as sampler:
        started = time.monotonic()
        response = await api.post("/campaigns", json=body)
        response.raise_for_status()
        job_id: int = response.json()["data"]["id"]
        filed = 0
        while filed < n:
            await asyncio.sleep(0.5)
            filed = await conn.fetchval(
                "SELECT count(*) FROM inbox_entries WHERE send_job_id = $1", job_id
            )
        seconds = time.monotonic() - started
    return {"job_id": job_id, "seconds": seconds, "rss_peak_mb": dict(sampler.peak)}


async def visible_to_sync(app: dict[str, str], ids: list[str]) -> int:
    """How many of a sample of recipients see the message on their phone home."""
    seen = 0
    exp = int(time.time()) + 600
    async with httpx.AsyncClient(base_url=SYNC, timeout=30) as client:
        for contact_id in ids:
            token = jwt.encode({"sub": contact_id, "exp": exp}, app["appSecret"], algorithm="HS256")
            answer = await client.post(
                "/v1/sync", json={"platform": "gcm"},
                headers={"X-App-Key": app["appKey"], "Authorization": f"Bearer {token}"},
            )  # fmt: skip
            seen += bool(answer.json()["messages"])
    return seen


async def floor_run(
    conn: asyncpg.Connection, redis: aioredis.Redis, ids: list[str], app_key: str, job_id: int
) -> float:
    """One COPY of the same N personalized rows, then the same cap script pipelined."""
    template = json.dumps(BOTTOM_BANNER)
    rows = [
        (job_id, cid, "floor", "inapp", [app_key],
         template.replace("%%First_Name%%", f"Name{i}"), 3)
        for i, cid in enumerate(ids)
    ]  # fmt: skip
    caps, scopes = FrequencyCaps(redis), app_caps({app_key: LIMITS})
    started = time.monotonic()
    await conn.copy_records_to_table(
        "inbox_entries", records=rows,
        columns=["send_job_id", "contact_id", "content_id", "kind", "app_keys", "payload",
                 "max_views"],
    )  # fmt: skip
    now = datetime.now(UTC)
    for start in range(0, len(ids), 10_000):
        await caps.admit(job_id, ids[start : start + 10_000], scopes, now)
    return time.monotonic() - started


async def setup(api: httpx.AsyncClient, run: str) -> tuple[dict[str, str], str, int]:
    app = await api.post("/apps", json={"name": "bench-fanout", "frequencyLimits": LIMITS})
    content = await api.post("/channels/push/inappcontent", json=BOTTOM_BANNER)
    query = {"attribute": "run", "op": "eq", "value": run}
    source = await api.post("/contact-sources", json={"name": "fanout", "query": query})
    for response in (app, content, source):
        response.raise_for_status()
    return app.json()["data"], content.json()["data"]["id"], source.json()["data"]["id"]


async def main(n: int, repeat: int) -> None:
    settings = CommonSettings()
    run = uuid.uuid4().hex[:8]
    ids = [f"fo-{run}-{i}" for i in range(n)]
    conn = await asyncpg.connect(settings.database_url)
    redis = aioredis.from_url(settings.redis_url)
    headers = {"Authorization": f"Bearer {admin_token()}"}
    runs: list[dict[str, Any]] = []
    floors: list[float] = []
    jobs: list[int] = []
    try:
        log(f"inserting {n:,} contacts")
        attrs = {"run": run, "Dated": "2026-11-21"}
        await insert_contacts(conn, ids, lambda i, _c: {**attrs, "first_name": f"Name{i}"})
        async with httpx.AsyncClient(base_url=PUBLISHER, headers=headers, timeout=60) as api:
            app, content_id, source = await setup(api, run)
            for i in range(repeat):  # side by side: campaign, then floor, per repetition
                result = await campaign_run(api, conn, source, app, content_id, n)
                jobs.append(result["job_id"])
                result["visible_of_100"] = await visible_to_sync(
                    app, ids[:: max(1, n // 100)][:100]
                )
                floor_job = -int(time.time() * 1000)
                jobs.append(floor_job)
                floors.append(await floor_run(conn, redis, ids, app["appKey"], floor_job))
                runs.append(result)
                log(f"run {i + 1}: {result} (floor {floors[-1]:.1f}s)")
                await conn.execute("DELETE FROM inbox_entries WHERE send_job_id = ANY($1)", jobs)
                await unlink_matching(redis, f"ph:cap:{{fo-{run}-*")
    finally:
        await conn.execute("DELETE FROM contacts WHERE contact_id = ANY($1)", ids)
        await wait_for_delivery(within=600)
        await conn.execute("DELETE FROM inbox_entries WHERE send_job_id = ANY($1)", jobs)
        for pattern in (f"ph:cap:{{fo-{run}-*", f"ph:inbox:{{fo-{run}-*"):
            await unlink_matching(redis, pattern)
        await redis.aclose()
        await conn.close()
    seconds, floor = median([r["seconds"] for r in runs]), median(floors)
    report("fanout", {
        "n": n, "repeat": repeat, "seconds": round(seconds, 2),
        "recipients_per_s": round(n / seconds), "floor_seconds": round(floor, 2),
        "ratio": round(seconds / floor, 2),
        "scheduler_rss_peak_mb": max(r["rss_peak_mb"]["scheduler"] for r in runs),
        "delivery_rss_peak_mb": max(r["rss_peak_mb"]["delivery"] for r in runs),
        "visible_of_100": min(r["visible_of_100"] for r in runs),
    }, {"runs": runs, "floors": floors})  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.repeat))
