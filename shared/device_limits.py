"""Per-device rate limits of the device API (app + contact), counted in Redis and batched
per turn of the event loop.

A phone home must stay cheap (services/sync/fast_path.py): ``limits``' own counter costs
one ``EVALSHA`` of about 180 µs of client CPU per request (measured), more than the phone
home itself. So the hits asked for in one turn go to Redis together, as
``shared.redis_keys.InboxVersions`` does for versions: one script call per slot tag
(pipelined when several), each incrementing its keys in a fixed one-minute window and
answering each count with the window's remaining seconds (``Retry-After`` costs nothing
more). A device's counter carries its contact's hash tag, so a batch's keys of one
bucket share a slot on a Redis Cluster.

While Redis is down, slow (``TIMEOUT_SECONDS``) or failing, limiting fails OPEN: every hit
of the batch is let through, and a warning is logged at most every ``WARN_EVERY_SECONDS``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from redis.asyncio.cluster import RedisCluster

from shared.redis_client import RedisClient, run_per_slot
from shared.redis_slots import tag_of

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
TIMEOUT_SECONDS = 0.5
WARN_EVERY_SECONDS = 30.0

# KEYS: counters; ARGV[1]: window seconds. Answers count, seconds left for each key.
_HIT = """
local out = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  local ttl = -1
  if n > 1 then ttl = redis.call('TTL', key) end
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


def device_key(app_key: str, contact_id: str) -> str:
    return f"ph:{{{tag_of(contact_id)}}}:rl:d:{len(app_key)}:{app_key}:{contact_id}"


class DeviceLimits:
    """``retry_after(app_key, contact_id, per_minute)``: None if the request may go ahead
    (it is counted), else the seconds until the device's window resets."""

    def __init__(self, redis: RedisClient, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self.redis = redis
        self.timeout = timeout
        self._script = redis.register_script(_HIT)
        self._cluster = isinstance(redis, RedisCluster)
        self._asked: dict[str, list[tuple[str, Counted]]] = {}
        self._counting: set[asyncio.Task[None]] = set()
        self._warned_at = -math.inf

    async def retry_after(self, app_key: str, contact_id: str, per_minute: int) -> int | None:
        loop = asyncio.get_running_loop()
        if not self._asked:
            loop.call_soon(self._flush)
        counted: asyncio.Future[tuple[int, int]] = loop.create_future()
        group = tag_of(contact_id) if self._cluster else ""  # one Redis: one call for all
        self._asked.setdefault(group, []).append((device_key(app_key, contact_id), counted))
        try:
            count, seconds_left = await counted
        except Exception as exc:
            self._warn(exc)
            return None
        if count <= per_minute:
            return None
        return max(1, seconds_left if seconds_left > 0 else WINDOW_SECONDS)

    def _flush(self) -> None:
        asked, self._asked = self._asked, {}
        task = asyncio.ensure_future(self._count(asked))
        self._counting.add(task)
        task.add_done_callback(self._counting.discard)

    async def _count(self, asked: dict[str, list[tuple[str, Counted]]]) -> None:
        groups = list(asked.values())
        waiting = [counted for group in groups for _, counted in group]
        calls = [([key for key, _ in group], [WINDOW_SECONDS]) for group in groups]
        try:
            async with asyncio.timeout(self.timeout):
                replies = await run_per_slot(self.redis, self._script, calls)
        except asyncio.CancelledError:
            for counted in waiting:
                counted.cancel()
            raise
        except Exception as exc:  # each waiter fails open with it
            for counted in waiting:
                if not counted.done():
                    counted.set_exception(exc)
            return
        answers = [int(n) for reply in replies for n in reply]
        for i, counted in enumerate(waiting):
            if not counted.done():
                counted.set_result((answers[2 * i], answers[2 * i + 1]))

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning("device rate limits not counted (Redis unavailable: %r)", exc)
