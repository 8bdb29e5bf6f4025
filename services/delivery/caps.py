"""Frequency caps: the app's rolling-window limits and per-tag caps, per contact.

Each cap is a sorted set in Redis per (contact, app) or (contact, tag) whose members are
send job ids scored by delivery time, so one set answers every rolling window. The
check-and-count of one recipient is one Lua script — atomic, so concurrent sends cannot
both take the last slot — and a batch's scripts go in one pipelined round trip.

Idempotent under redelivery: a recipient whose send job is already in its sets was
allowed before and is allowed again without counting twice (the inbox then reports
``duplicate``).

When Redis is unreachable the call raises; the worker retries the batch until Redis is
back. It never delivers past a cap silently, and never skips a recipient for it
(fail-closed).
"""

from __future__ import annotations

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

# KEYS: the cap sets. ARGV: now_ms, member, retention_ms, then per key: n, (window_ms, limit)*n
_CHECK_AND_COUNT = """
local now = tonumber(ARGV[1])
local member = ARGV[2]
for _, key in ipairs(KEYS) do
  if redis.call('ZSCORE', key, member) then return 1 end
end
local pos = 4
for _, key in ipairs(KEYS) do
  local n = tonumber(ARGV[pos]); pos = pos + 1
  for _ = 1, n do
    local window, limit = tonumber(ARGV[pos]), tonumber(ARGV[pos + 1]); pos = pos + 2
    if redis.call('ZCOUNT', key, '(' .. (now - window), '+inf') >= limit then return 0 end
  end
end
local retention = tonumber(ARGV[3])
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, member)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - retention)
  redis.call('PEXPIRE', key, retention)
end
return 1
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
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._script = redis.register_script(_CHECK_AND_COUNT)

    async def admit(
        self, job_id: int, contact_ids: Sequence[str], caps: Sequence[Cap], now: datetime
    ) -> set[str]:
        """Count the send against every cap for each contact under all of them; return the
        contacts that are over a cap (and were not counted)."""
        if not caps or not contact_ids:
            return set()
        now_ms = int(now.timestamp() * 1000)
        args: list[int | str] = [now_ms, str(job_id), RETENTION_MS]
        for cap in caps:
            args.append(len(cap.windows))
            for window, limit in cap.windows:
                args += [window, limit]
        async with self.redis.pipeline(transaction=False) as pipe:
            for contact_id in contact_ids:
                keys = [cap_key(contact_id, cap.scope) for cap in caps]
                await self._script(keys=keys, args=args, client=pipe)
            results = await pipe.execute()
        return {c for c, admitted in zip(contact_ids, results, strict=True) if not admitted}
