"""Redis's part of delivering one batch: the frequency-cap script and the inbox-version
bump for 1,000 recipients of one bucket (as the scheduler plans them), on the stack's
single Redis and on the local Redis Cluster that the stack script starts for the tests.

    .venv/bin/python bench/redis_batch.py                    # 200 batches per target
    .venv/bin/python bench/redis_batch.py --batches 50 --targets redis

Each batch is a fresh send job for the same 1,000 contacts with two caps (an app's
windows and a tag cap, generous enough never to cap anyone), so every recipient is
counted in two sorted sets and has its version bumped: ``FrequencyCaps.admit`` (without
a pool: nothing recorded in PostgreSQL, the rebuild marker not checked) then
``bump_inbox_versions``, one batch after the other. The keys are deleted afterwards.

``BENCH redis_batch target=... recipients=1000 batches=... caps_ms_p50=... bump_ms_p50=...
batch_ms_p50=... recipients_per_s=... client_cpu_ms=...`` per target (p50 of the per-batch
wall time; the benchmark process's CPU per batch, which other load on the machine barely
changes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.delivery.caps import FrequencyCaps, app_caps, tag_caps
from shared.redis_client import RedisClient, connect
from shared.redis_keys import bump_inbox_versions, cap_key, inbox_version
from shared.settings import CommonSettings
from shared.topics import bucket_of

RECIPIENTS = 1_000
CAPS = app_caps({"bench": {"perDay": 1_000_000, "perWeek": 1_000_000}}) + tag_caps(
    {"bench": (1_000_000, 86_400)}
)


def one_bucket(run: str, n: int) -> list[str]:
    """n contact ids of one bucket, as a batch the scheduler plans."""
    ids: list[str] = []
    i = 0
    while len(ids) < n:
        contact_id = f"rb-{run}-{i}"
        if bucket_of(contact_id) == 7:
            ids.append(contact_id)
        i += 1
    return ids


async def measure(target: str, url: str, batches: int) -> None:
    redis: RedisClient = connect(url)
    ids = one_bucket(uuid.uuid4().hex[:8], RECIPIENTS)
    caps = FrequencyCaps(redis)
    caps_ms, bump_ms, batch_ms = [], [], []
    cpu = time.process_time()
    try:
        for job in range(1, batches + 1):
            started = time.perf_counter()
            over = await caps.admit(job, ids, CAPS, datetime.now(UTC))
            counted = time.perf_counter()
            await bump_inbox_versions(redis, ids)
            done = time.perf_counter()
            assert not over, "a generous cap capped someone"
            caps_ms.append((counted - started) * 1000)
            bump_ms.append((done - counted) * 1000)
            batch_ms.append((done - started) * 1000)
        cpu = (time.process_time() - cpu) / batches * 1000
    finally:
        keys = [inbox_version(c) for c in ids] + [
            cap_key(c, cap.scope) for c in ids for cap in CAPS
        ]
        for key in keys:
            await redis.unlink(key)
        await redis.aclose()
    p50 = statistics.median(batch_ms)
    print(
        f"BENCH redis_batch target={target} recipients={RECIPIENTS} batches={batches} "
        f"caps_ms_p50={statistics.median(caps_ms):.2f} "
        f"bump_ms_p50={statistics.median(bump_ms):.2f} "
        f"batch_ms_p50={p50:.2f} recipients_per_s={RECIPIENTS / p50 * 1000:,.0f} "
        f"client_cpu_ms={cpu:.2f}",
        flush=True,
    )


async def main(batches: int, targets: list[str]) -> None:
    settings = CommonSettings()
    ports = os.environ.get("PIGEONHOLE_REDIS_CLUSTER_PORTS", "7001,7002,7003").split(",")
    cluster = "redis-cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports)
    urls = {"redis": settings.redis_url, "cluster": cluster}
    for target in targets:
        await measure(target, urls[target], batches)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--targets", nargs="+", default=["redis", "cluster"])
    args = parser.parse_args()
    asyncio.run(main(args.batches, args.targets))
