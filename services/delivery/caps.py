"""Frequency caps: the app's rolling-window limits and per-tag caps, per contact.

Each cap is a sorted set in Redis per (contact, app) or (contact, tag) whose members are
send job ids scored by delivery time, so one set answers every rolling window. The
check-and-count of a whole batch is one Lua script call — atomic, so concurrent sends
cannot both take the last slot — and one round trip with one reply to read.

Redis Cluster ready: the script names keys of many contacts, so they must share one slot.
Every contact's keys carry its partition bucket's hash tag (shared/redis_slots.py) and a
batch holds one bucket, so a batch is one call on a single Redis and on a cluster alike.
Recipients of several buckets (any other caller) are grouped per tag: one call per group,
pipelined (one round trip per cluster node), each atomic for its contacts.

Idempotent under redelivery: a recipient whose send job is already in its sets was
allowed before and is allowed again without counting twice (the inbox then reports
``duplicate``).

Durable by rebuild, not by Redis persistence: Redis holds only what can be rebuilt.
After the script admits recipients, one INSERT per batch records them in PostgreSQL's
``cap_hits`` (send job, contact, the scopes counted, the score) — only sends that have
caps write anything. The script also checks its group's rebuild marker (one per slot tag,
``caps_rebuilt(tag)``, all written by every rebuild); an emptied Redis (data lost,
FLUSHALL) or cluster node lacks the markers of its slots, so the script counts nothing
there and answers "rebuild first", and the worker reloads the sets from ``cap_hits``
(shared/cap_hits.py, one process at a time) before counting those recipients. Redis's own
AOF (everysec) covers a plain restart; a crash that loses the last second keeps the
marker, and ``pigeonhole caps rebuild`` restores those hits by hand. The rows are kept
for the longest window + a margin, then purged by the scheduler.

When Redis or PostgreSQL is unreachable the call raises; the worker retries the batch
until it is back. It never delivers past a cap silently, and never skips a recipient for
it (fail-closed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from redis.commands.core import AsyncScript

from services.delivery.repository import insert_cap_hits
from shared.cap_hits import ensure_loaded
from shared.redis_client import RedisClient, run_per_slot
from shared.redis_keys import CAP_RETENTION_MS, cap_key, cap_keys, caps_rebuilt
from shared.redis_slots import by_tag

__all__ = ["Cap", "FrequencyCaps", "app_caps", "cap_key", "tag_caps"]

WINDOWS_MS = {
    "perMinute": 60_000,
    "perHour": 3_600_000,
    "perDay": 86_400_000,
    "perWeek": 7 * 86_400_000,
    "perMonth": 30 * 86_400_000,
}
RETENTION_MS = CAP_RETENTION_MS  # every window, and a tag cap's longest period (31 days)
assert max(WINDOWS_MS.values()) <= RETENTION_MS
NEEDS_REBUILD = -1

# One call per batch (per slot tag). KEYS: each recipient's cap sets, ncaps per recipient,
# in cap order, then the tag's rebuild marker. ARGV: now_ms, member, retention_ms, ncaps,
# check_marker (1/0), then per cap: n, (window_ms, limit)*n. Returns -1 (the marker is
# missing: rebuild the sets first; nothing counted) or, per recipient, 1 (admitted and
# counted, or counted before) or 0 (over a cap).
_CHECK_AND_COUNT = """
local now, member = tonumber(ARGV[1]), ARGV[2]
local retention, ncaps = tonumber(ARGV[3]), tonumber(ARGV[4])
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[#KEYS]) == 0 then return -1 end
local caps, pos = {}, 6
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
for r = 1, (#KEYS - 1) / ncaps do
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


Call = tuple[list[str], list[int | str]]  # a script call's keys and args


class FrequencyCaps:
    """Counts caps in Redis and, given the pool, records the hits in PostgreSQL and rebuilds
    Redis from them when it lost its data. Without a pool (benchmarks of the script alone)
    nothing is recorded and the marker is not checked."""

    def __init__(
        self, redis: RedisClient, pool: asyncpg.Pool | None = None, timeout: float = 5.0
    ) -> None:
        self.redis, self.pool, self.timeout = redis, pool, timeout
        self._script: AsyncScript = redis.register_script(_CHECK_AND_COUNT)

    async def admit(
        self, job_id: int, contact_ids: Sequence[str], caps: Sequence[Cap], now: datetime
    ) -> set[str]:
        """Count the send against every cap for each contact under all of them; return the
        contacts that are over a cap (and were not counted). One script call per batch
        (per slot tag: a batch has one): atomic, and one reply for the client to read; one
        INSERT of the admitted."""
        if not caps or not contact_ids:
            return set()
        args = self._args(job_id, caps, now)
        groups = by_tag(contact_ids)
        scopes = [cap.scope for cap in caps]
        calls: dict[str, Call] = {
            tag: ([*cap_keys(tag, members, scopes), caps_rebuilt(tag)], args)
            for tag, members in groups.items()
        }
        results = await self._run(calls)
        for _ in range(3):  # Redis lost cap data: rebuild, then count those (nothing was)
            lost = [tag for tag, result in results.items() if result == NEEDS_REBUILD]
            if not lost or self.pool is None:
                break
            await ensure_loaded(self.pool, self.redis, lost)
            results |= await self._run({tag: calls[tag] for tag in lost})
        over: set[str] = set()
        for tag, members in groups.items():
            result = results[tag]
            if not isinstance(result, list):
                raise RuntimeError("frequency caps: Redis keeps losing its data during rebuilds")
            over.update(c for c, admitted in zip(members, result, strict=True) if not admitted)
        if self.pool is not None:
            admitted = [c for c in contact_ids if c not in over]
            await insert_cap_hits(self.pool, job_id, admitted, [c.scope for c in caps], now)
        return over

    def _args(self, job_id: int, caps: Sequence[Cap], now: datetime) -> list[int | str]:
        check = 1 if self.pool is not None else 0
        args: list[int | str] = [
            int(now.timestamp() * 1000), str(job_id), RETENTION_MS, len(caps), check,
        ]  # fmt: skip
        for cap in caps:
            args.append(len(cap.windows))
            for window, limit in cap.windows:
                args += [window, limit]
        return args

    async def _run(self, calls: dict[str, Call]) -> dict[str, list[int] | int]:
        async with asyncio.timeout(self.timeout):  # a stalled Redis raises TimeoutError
            results = await run_per_slot(self.redis, self._script, list(calls.values()))
        return dict(zip(calls, results, strict=True))
