"""Per-device limits against the real Redis (and the test Redis Cluster): exact at the
limit within one process, shared by processes (two limiters here), counted in Redis."""

from __future__ import annotations

import uuid

import pytest

from shared.device_limits import DeviceLimits, device_key
from shared.redis_client import connect
from shared.settings import CommonSettings

pytestmark = pytest.mark.integration

CLUSTER = "redis-cluster://127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"


@pytest.mark.parametrize("where", ["redis", "cluster"])
async def test_a_device_is_refused_past_its_limit_and_processes_share_the_count(
    where: str,
) -> None:
    redis = connect(CommonSettings().redis_url if where == "redis" else CLUSTER)
    first, second = DeviceLimits(redis), DeviceLimits(redis)
    contact = f"dl-{uuid.uuid4().hex[:8]}"
    try:
        answers = [await first.retry_after("app", contact, 3) for _ in range(5)]
        assert answers[:3] == [None] * 3
        assert answers[3] is not None and 1 <= answers[3] <= 60
        # another process has not heard of the device yet: one hit (within FLUSH_SECONDS)
        # goes through, then it knows the count
        assert await second.retry_after("app", contact, 3) is None
        await second.drain()
        assert await second.retry_after("app", contact, 3) is not None
        assert await second.retry_after("other-app", contact, 3) is None  # another device

        shared = f"dl-{uuid.uuid4().hex[:8]}"
        for _ in range(4):  # well under 10: let through at once, counted in the flush
            assert await first.retry_after("app", shared, 10) is None
        await first.drain()
        assert int(await redis.get(device_key("app", shared)) or 0) == 4
        allowed = [await second.retry_after("app", shared, 10) for _ in range(8)]
        await second.drain()
        assert allowed.count(None) == 6, allowed  # 4 + 6 = the limit, then refused
        assert int(await redis.get(device_key("app", shared)) or 0) == 12
    finally:
        await redis.aclose()
