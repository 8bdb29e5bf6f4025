"""Per-device rate limits of the device API (app + contact), counted in Redis.

A phone home must stay cheap (services/sync/fast_path.py): ``limits``' own counter costs
one ``EVALSHA`` of about 180 µs of client CPU per request (measured), more than the phone
home itself, and even one batched call per loop turn costs a busy process about a fifth
of its "nothing new" throughput. So a device well under its limit (its count as last
heard from Redis plus this process's hits since, at most half the limit: every device
that behaves) is let through at once and its hit counted in the next flush, at most
``FLUSH_SECONDS`` later: one script call for every such hit of the process. From half its
limit on, each hit of the device waits for its count from Redis (batched per loop turn),
so the limit itself is exact in one process; across processes, over by at most what
the device sent in ``FLUSH_SECONDS``. A counter carries its contact's hash tag, so on a
Redis Cluster a call names keys of one slot (one call per tag, pipelined).

Each count lives in a fixed one-minute window; a refused hit learns the seconds left in
it (``Retry-After``) from the same reply. While Redis is down, slow
(``TIMEOUT_SECONDS``) or failing, limiting fails OPEN: the hits waiting are let through
and the others are not counted; a warning is logged at most every ``WARN_EVERY_SECONDS``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from cachetools import TTLCache
from redis.asyncio.cluster import RedisCluster

from shared.redis_client import RedisClient, run_per_slot
from shared.redis_slots import tag_of

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
FLUSH_SECONDS = 0.05
TIMEOUT_SECONDS = 0.5
WARN_EVERY_SECONDS = 30.0
MAX_DEVICES = 200_000  # devices remembered per process (about 200 bytes each)

# KEYS: counters; ARGV[1]: window seconds, ARGV[1 + i]: KEYS[i]'s increment. Answers the
# count and the window's seconds left for each key.
_HIT = """
local out = {}
for i, key in ipairs(KEYS) do
  local by = tonumber(ARGV[i + 1])
  local n = redis.call('INCRBY', key, by)
  local ttl = -1
  if n > by then ttl = redis.call('TTL', key) end
  if ttl < 0 then  -- a new window (or a counter that lost its expiry: never stuck)
    redis.call('EXPIRE', key, ARGV[1])
    ttl = tonumber(ARGV[1])
  end
  out[2 * i - 1] = n
  out[2 * i] = ttl
end
return out
"""

Counted = asyncio.Future[tuple[int, int]]  # (count in the window, its seconds left)
Hit = tuple[str, int, str, Counted | None]  # (counter, increment, group, who waits)


def device_key(app_key: str, contact_id: str) -> str:
    return f"ph:{{{tag_of(contact_id)}}}:rl:d:{len(app_key)}:{app_key}:{contact_id}"


class DeviceLimits:
    """``retry_after(app_key, contact_id, per_minute)``: None if the request may go ahead
    (it is counted), else the seconds until the device's window resets."""

    def __init__(
        self,
        redis: RedisClient,
        *,
        timeout: float = TIMEOUT_SECONDS,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        self.redis = redis
        self.timeout = timeout
        self.flush_seconds = flush_seconds
        self._script = redis.register_script(_HIT)
        self._cluster = isinstance(redis, RedisCluster)
        # counter: [its count as last heard from Redis, hits since not sent yet]
        self._devices: TTLCache[str, list[int]] = TTLCache(MAX_DEVICES, WINDOW_SECONDS)
        self._waiting: list[Hit] = []
        self._unsent: dict[str, str] = {}  # counter: its group (slot tag on a cluster)
        self._flush_soon = self._flush_later = False
        self._counting: set[asyncio.Task[None]] = set()
        self._warned_at = -math.inf

    async def retry_after(self, app_key: str, contact_id: str, per_minute: int) -> int | None:
        key = device_key(app_key, contact_id)
        device = self._devices.get(key)
        if device is None:
            device = self._devices[key] = [0, 0]
        heard, unsent = device
        group = tag_of(contact_id) if self._cluster else ""
        if (heard + unsent + 1) * 2 <= per_minute:  # well under: go, counted later
            device[1] = unsent + 1
            self._unsent[key] = group
            self._schedule(later=True)
            return None
        device[1] = 0
        self._unsent.pop(key, None)
        counted: Counted = asyncio.get_running_loop().create_future()
        self._waiting.append((key, unsent + 1, group, counted))
        self._schedule(later=False)
        try:
            count, seconds_left = await counted
        except Exception as exc:  # Redis down or slow: fail open
            self._warn(exc)
            return None
        return None if count <= per_minute else max(1, seconds_left)

    async def drain(self) -> None:
        """Send the hits not sent yet now, and wait for every count under way."""
        self._flush()
        if self._counting:
            await asyncio.gather(*self._counting, return_exceptions=True)

    def _schedule(self, *, later: bool) -> None:
        loop = asyncio.get_running_loop()
        if later and not self._flush_later:
            self._flush_later = True
            loop.call_later(self.flush_seconds, self._flush)
        elif not later and not self._flush_soon:
            self._flush_soon = True
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Send every hit not sent yet: those waiting for their count and the others."""
        self._flush_soon = self._flush_later = False
        hits, self._waiting = self._waiting, []
        for key, group in self._unsent.items():
            device = self._devices.get(key)
            if device is not None and device[1] > 0:
                hits.append((key, device[1], group, None))
                device[1] = 0
        self._unsent = {}
        if not hits:
            return
        task = asyncio.ensure_future(self._count(hits))
        self._counting.add(task)
        task.add_done_callback(self._counting.discard)

    async def _count(self, hits: list[Hit]) -> None:
        by_group: dict[str, list[Hit]] = {}
        for hit in hits:
            by_group.setdefault(hit[2], []).append(hit)
        groups = list(by_group.values())
        calls = [
            ([hit[0] for hit in group], [WINDOW_SECONDS, *(hit[1] for hit in group)])
            for group in groups
        ]
        try:
            async with asyncio.timeout(self.timeout):
                replies = await run_per_slot(self.redis, self._script, calls)
        except asyncio.CancelledError:
            _settle(hits, asyncio.CancelledError())
            raise
        except Exception as exc:  # each waiting hit fails open with it
            _settle(hits, exc)
            if not any(hit[3] for hit in hits):
                self._warn(exc)  # nobody waited to see it
            return
        answers = [int(n) for reply in replies for n in reply]
        for i, (key, _, _, counted) in enumerate(hit for group in groups for hit in group):
            count, seconds_left = answers[2 * i], answers[2 * i + 1]
            device = self._devices.get(key)
            if device is not None:
                device[0] = count
            if counted is not None and not counted.done():
                counted.set_result((count, seconds_left))

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning("device rate limits not counted (Redis unavailable: %r)", exc)


def _settle(hits: list[Hit], exc: BaseException) -> None:
    for _, _, _, counted in hits:
        if counted is None or counted.done():
            continue
        if isinstance(exc, asyncio.CancelledError):
            counted.cancel()
        else:
            counted.set_exception(exc)
