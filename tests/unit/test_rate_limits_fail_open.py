"""Rate limiting fails open: with Redis unreachable every request goes ahead (the service
answers as it would without limits) instead of all being refused."""

from __future__ import annotations

import socket

from shared.device_limits import DeviceLimits
from shared.rate_limits import RateLimiter, storage_uri
from shared.redis_client import connect


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens there once the probe is closed


async def test_token_limits_let_requests_in_while_redis_is_unreachable() -> None:
    limiter = RateLimiter(f"redis://127.0.0.1:{_closed_port()}/0", timeout=0.2)
    assert [await limiter.retry_after("token", "t", 1) for _ in range(3)] == [None] * 3


async def test_device_limits_let_requests_in_while_redis_is_unreachable() -> None:
    limits = DeviceLimits(connect(f"redis://127.0.0.1:{_closed_port()}/0"), timeout=0.2)
    assert [await limits.retry_after("app", "c-1", 1) for _ in range(3)] == [None] * 3


def test_pigeonhole_redis_urls_map_to_limits_storage_uris() -> None:
    assert storage_uri("redis://h:6379/2") == "async+redis://h:6379/2"
    assert storage_uri("rediss://u:p@h:6380/0") == "async+rediss://u:p@h:6380/0"
    assert storage_uri("redis-cluster://a:1,b:2") == "async+redis+cluster://a:1,b:2"
