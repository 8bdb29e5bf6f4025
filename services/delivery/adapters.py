"""PostgreSQL, Redis and Kafka behind the deliverer's small protocols."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import asyncpg
from aiokafka import AIOKafkaProducer
from cachetools import TTLCache

from services.delivery import failures_repository, repository
from services.delivery.deliverer import priority_for
from services.delivery.repository import ContactState, Content, NewEntry
from shared.events import BatchDelivered, OutcomeDetail, RecipientOutcome, SendBatch
from shared.inbox_signals import inboxes_changed
from shared.personalization.stored import platform_bits
from shared.redis_client import RedisClient
from shared.topics import DELIVERIES

# Entries per cache: far more than the contents, apps and tag sets in use at once.
CACHE_MAX_ENTRIES = 10_000
K = TypeVar("K")
V = TypeVar("V")


async def _cached(cache: TTLCache[K, V], key: K, load: Callable[[], Awaitable[V]]) -> V:
    """The cached value (``None`` included: "no such row" is cached too) or a fresh load."""
    try:
        return cache[key]
    except KeyError:  # never loaded, expired or evicted
        pass
    value = cache[key] = await load()
    return value


class PgDeliveryStore:
    """Contents are immutable once published, so they are cached for a short while; app
    limits and tag caps change rarely, so a change reaches the worker within
    ``limits_ttl_seconds``. Each cache is a bounded ``cachetools.TTLCache`` (least recently
    used entries go first when full). A miss loads from PostgreSQL; two batches missing the
    same key at once each load it (one cheap read each, the later one is kept), so there is
    no per-key lock to hold while PostgreSQL is slow or down."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        inbox_cap: int = 200,
        content_ttl_seconds: float = 30.0,
        limits_ttl_seconds: float = 10.0,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.inbox_cap = inbox_cap
        self._contents: TTLCache[str, Content | None] = TTLCache(
            CACHE_MAX_ENTRIES, content_ttl_seconds, timer
        )
        self._limits: TTLCache[tuple[str, ...], Any] = TTLCache(
            CACHE_MAX_ENTRIES, limits_ttl_seconds, timer
        )

    async def app_limits(self, app_keys: list[str]) -> dict[str, dict[str, int]]:
        limits: dict[str, dict[str, int]] = await _cached(
            self._limits,
            ("apps", *app_keys),
            lambda: repository.load_app_limits(self.pool, app_keys),
        )
        return limits

    async def tag_caps(self, tags: list[str]) -> dict[str, tuple[int, int]]:
        caps: dict[str, tuple[int, int]] = await _cached(
            self._limits, ("tags", *tags), lambda: repository.load_tag_caps(self.pool, tags)
        )
        return caps

    async def content(self, content_id: str) -> Content | None:
        content: Content | None = await _cached(
            self._contents, content_id, lambda: repository.load_content(self.pool, content_id)
        )
        return content

    async def contacts(self, contact_ids: list[str]) -> dict[str, ContactState]:
        return await repository.load_contacts(self.pool, contact_ids)

    async def file_entries(
        self, batch: SendBatch, content: Content, entries: list[NewEntry]
    ) -> set[str]:
        filing = repository.Filing(
            job_id=batch.job_id,
            batch_seq=batch.batch_seq,
            content=content,
            app_keys=batch.app_keys,
            is_test=batch.options.is_test,
            platforms=platform_bits(content.body) if content.kind == "inapp" else None,
            entries=entries,
            priority=priority_for(batch, content),
        )
        filed = await repository.file_batch(self.pool, filing)
        if content.kind == "inbox":
            await repository.evict_oldest(self.pool, sorted(filed), self.inbox_cap)
        return filed

    async def record_failures(self, job_id: int, failures: Mapping[str, OutcomeDetail]) -> None:
        await failures_repository.insert_failures(self.pool, job_id, failures)


class RedisInboxSignal:
    def __init__(self, redis: RedisClient) -> None:
        self.redis = redis

    async def inboxes_changed(self, contact_ids: Iterable[str]) -> None:
        await inboxes_changed(self.redis, contact_ids)


class KafkaOutcomes:
    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def __call__(self, result: BatchDelivered) -> None:
        key = str(result.job_id).encode()
        sent = [
            await self.producer.send(DELIVERIES.name, outcomes_message(part), key=key)
            for part in outcome_parts(result)
        ]
        for delivery in sent:
            await delivery


# Below the broker's message size (1 MiB) with room for the record's overhead.
MAX_OUTCOMES_BYTES = 900_000
# What one outcome adds to the JSON beyond its contact id, at most without a detail
# ({"contact_id":"…","outcome":"skipped","reason":"personalization_failed"},).
_OUTCOME_OVERHEAD_BYTES = 96
_PART_BUDGET_BYTES = 800_000


def outcome_parts(result: BatchDelivered) -> list[BatchDelivered]:
    """The event cut into parts that fit the broker, by the recipients' contact ids alone,
    so a retried batch is cut the same way whatever its outcomes are this time (statistics
    apply each event id once). The first part keeps the batch's event id; part n is
    ``<event id>-n``. A batch of up to 5,000 recipients with 200-character ids is one part
    of some hundreds of kilobytes in practice; the cut is for the worst case."""
    parts: list[list[RecipientOutcome]] = [[]]
    size = 0
    for outcome in result.outcomes:
        cost = len(outcome.contact_id.encode()) + _OUTCOME_OVERHEAD_BYTES
        if parts[-1] and size + cost > _PART_BUDGET_BYTES:
            parts.append([])
            size = 0
        parts[-1].append(outcome)
        size += cost
    if len(parts) == 1:
        return [result]
    return [
        result.model_copy(
            update={"event_id": result.event_id if n == 0 else f"{result.event_id}-{n}",
                    "outcomes": outcomes}
        )
        for n, outcomes in enumerate(parts)
    ]  # fmt: skip


def outcomes_message(result: BatchDelivered) -> bytes:
    """The event as JSON without null fields (so outcomes without a detail read exactly as
    before ``detail`` existed). Should the details make it too large for the broker, they
    are left out: ``delivery_failures`` keeps them all."""
    message = result.model_dump_json(exclude_none=True).encode()
    if len(message) <= MAX_OUTCOMES_BYTES:
        return message
    bare = [o.model_copy(update={"detail": None}) for o in result.outcomes]
    return result.model_copy(update={"outcomes": bare}).model_dump_json(exclude_none=True).encode()
