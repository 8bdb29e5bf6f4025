"""Rate limits counted in Redis, so every process of a service shares them (docs/api.md,
"Rate limits"): per API token on the management API, per device (app + contact) on the
device API.

Counting is the ``limits`` library's fixed window of one minute (one ``EVALSHA`` of its
increment-and-expire script per request, on a single Redis or a Redis Cluster: one key
per counter). A refused request learns when the window resets (one more round trip, only
when refused) for ``Retry-After``.

While Redis is down or slow (``TIMEOUT_SECONDS``), limiting fails OPEN: the request is
let through, and a warning is logged at most once per ``WARN_EVERY_SECONDS``. A service
that needs Redis for the request itself still answers 503 as before.
"""

from __future__ import annotations

import logging
import math
import time
from urllib.parse import urlsplit

from limits import RateLimitItemPerMinute
from limits.aio.storage import RedisClusterStorage, RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter

from shared.redis_client import CLUSTER_SCHEMES

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 0.5
WARN_EVERY_SECONDS = 30.0


def storage_uri(redis_url: str) -> str:
    """The ``limits`` storage URI of a Pigeonhole Redis URL (shared/redis_client.py)."""
    scheme, _, rest = redis_url.partition("://")
    if scheme in CLUSTER_SCHEMES:
        return f"async+redis+cluster://{rest}"  # TLS: ssl=True (RateLimiter)
    if urlsplit(redis_url).scheme == "unix":
        return f"async+redis+unix://{rest}"
    return f"async+{redis_url}"


class RateLimiter:
    """Hits counted per (scope, key) in one-minute windows; ``hit`` says whether a request
    may go ahead and, if not, after how many seconds it may."""

    def __init__(self, redis_url: str, *, timeout: float = TIMEOUT_SECONDS) -> None:
        uri = storage_uri(redis_url)
        options: dict[str, float | bool] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
        }
        storage: type[RedisStorage] = RedisStorage
        if uri.startswith("async+redis+cluster://"):
            storage = RedisClusterStorage
            if CLUSTER_SCHEMES[urlsplit(redis_url).scheme]:
                options["ssl"] = True
        self.storage = storage(
            uri, implementation="redispy", wrap_exceptions=True, key_prefix="ph:rl", **options
        )
        self._limiter = FixedWindowRateLimiter(self.storage)
        self._items: dict[int, RateLimitItemPerMinute] = {}
        self._warned_at = -math.inf

    async def retry_after(self, scope: str, key: str, per_minute: int) -> int | None:
        """None if the request may go ahead (counted), else the seconds until it may."""
        item = self._items.get(per_minute)
        if item is None:
            item = self._items[per_minute] = RateLimitItemPerMinute(per_minute)
        try:
            if await self._limiter.hit(item, scope, key):
                return None
            stats = await self._limiter.get_window_stats(item, scope, key)
        except Exception as exc:
            self._warn(exc)
            return None
        return max(1, math.ceil(stats.reset_time - time.time()))

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning("rate limits not counted (Redis unavailable: %s); letting requests in", exc)
