"""Frequency caps: the app's rolling-window limits and per-tag caps, per contact.

Each cap is a sorted set in Redis per (contact, app) or (contact, tag) whose members are
send job ids scored by delivery time, so one set answers every rolling window. The
check-and-count of a whole batch is one Lua script call — atomic, so concurrent sends
cannot both take the last slot — and one round trip with one reply to read.

The script names keys of many contacts, so it needs a single Redis (with replicas), not
Redis Cluster; a cluster would need the batch split by hash slot.

Idempotent under redelivery: a recipient whose send job is already in its sets was
allowed before and is allowed again without counting twice (the inbox then reports
``duplicate``).

When Redis is unreachable the call raises; the worker retries the batch until Redis is
back. It never delivers past a cap silently, and never skips a recipient for it
(fail-closed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis

WINDOWS_MS = {
    "perMinute": 60_000,
    "perHour": 3_600_000,
    "perDay": 86_400_000,
    "perWeek": 7 * 86_400_000,
    "perMonth": 30 * 86_400_000,
}
RETENTION_MS = max(WINDOWS_MS.values()) + 86_400_000

# One call per batch. KEYS: each recipient's cap sets, ncaps per recipient, in cap order.
# ARGV: now_ms, member, retention_ms, ncaps, then per cap: n, (window_ms, limit)*n.
# Returns 1 (admitted and counted, or counted before) or 0 (over a cap) per recipient.
_CHECK_AND_COUNT = """
local now, member = tonumber(ARGV[1]), ARGV[2]
local retention, ncaps = tonumber(ARGV[3]), tonumber(ARGV[4])
local caps, pos = {}, 5
for c = 1, ncaps do
  local n = tonumber(ARGV[pos]); pos = pos + 1
  caps[c] = {}
  for w = 1, n do caps[c][w] = {tonumber(ARGV[pos]), tonumber(ARGV[pos + 1])}; pos = pos + 2 end
end
local function counted(base)
  for c = 1, ncaps do
    if redis.call('ZSCORE', KEYS[base + c], member) then return true end
  end
  return false
end
local function over(base)
  for c = 1, ncaps do
    for _, w in ipairs(caps[c]) do
      if redis.call('ZCOUNT', KEYS[base + c], '(' .. (now - w[1]), '+inf') >= w[2] then
        return true
      end
    end
  end
  return false
end
local results = {}
for r = 1, #KEYS / ncaps do
  local base = (r - 1) * ncaps
  if counted(base) then
    results[r] = 1
  elseif over(base) then
    results[r] = 0
  else
    for c = 1, ncaps do
      local key = KEYS[base + c]
      redis.call('ZADD', key, now, member)
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now - retention)
      redis.call('PEXPIRE', key, retention)
    end
    results[r] = 1
  end
end
return results
"""


@dataclass(frozen=True)
class Cap:
    """A set of windows on one sorted set: [(window_ms, limit), ...]."""

    scope: str  # "app:<appKey>" or "tag:<tag>"
    windows: tuple[tuple[int, int], ...]


def app_caps(app_limits: Mapping[str, Mapping[str, int]]) -> list[Cap]:
    """The app frequency limits of the apps a send targets (only usingAppFrequency sends)."""
    caps = []
    for app_key, limits in sorted(app_limits.items()):
        windows = tuple((WINDOWS_MS[w], n) for w, n in sorted(limits.items()) if w in WINDOWS_MS)
        if windows:
            caps.append(Cap(f"app:{app_key}", windows))
    return caps


def tag_caps(caps: Mapping[str, tuple[int, int]]) -> list[Cap]:
    """Tag caps of the content's tags: {tag: (max_count, period_seconds)}."""
    return [
        Cap(f"tag:{tag}", ((seconds * 1000, limit),))
        for tag, (limit, seconds) in sorted(caps.items())
    ]


def cap_key(contact_id: str, scope: str) -> str:
    # the {contact} hash tag keeps one contact's sets in one Redis Cluster slot
    return f"ph:cap:{{{contact_id}}}:{scope}"


class FrequencyCaps:
    def __init__(self, redis: Redis, timeout: float = 5.0) -> None:
        self.redis, self.timeout = redis, timeout
        self._script = redis.register_script(_CHECK_AND_COUNT)

    async def admit(
        self, job_id: int, contact_ids: Sequence[str], caps: Sequence[Cap], now: datetime
    ) -> set[str]:
        """Count the send against every cap for each contact under all of them; return the
        contacts that are over a cap (and were not counted). One script call per batch:
        atomic, and one reply for the client to read."""
        if not caps or not contact_ids:
            return set()
        args: list[int | str] = [int(now.timestamp() * 1000), str(job_id), RETENTION_MS, len(caps)]
        for cap in caps:
            args.append(len(cap.windows))
            for window, limit in cap.windows:
                args += [window, limit]
        keys = [cap_key(contact_id, cap.scope) for contact_id in contact_ids for cap in caps]
        async with asyncio.timeout(self.timeout):  # a stalled Redis raises TimeoutError
            results = await self._script(keys=keys, args=args)
        return {c for c, admitted in zip(contact_ids, results, strict=True) if not admitted}
