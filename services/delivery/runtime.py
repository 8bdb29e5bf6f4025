"""The delivery worker's clients and the handling of one SendBatch event around
BatchDeliverer: decode, deliver with retries, dead-letter what can never succeed.

What is retried, and for how long, is decided by where a failure comes from
(``shared.failures.dependency_down``), never by a broad Python type:

- a dependency is down (PostgreSQL, Redis or Kafka did not answer): the batch is retried
  with backoff until it answers, however long that takes, and ``/readyz`` says not-ready
  meanwhile. Nothing is skipped and no cap passes unchecked (fail-closed).
- anything else (bad input, a bug): three tries, then the event goes to pigeonhole.dlq
  with the error and the worker goes on with the next one.

``handle`` returns only once the event is handled or dead-lettered and raises nothing but
cancellation: a dead letter that cannot be written is retried the same way, so the agent
never acks an event that was neither delivered nor parked.

The retry loops are written out rather than tenacity's: the three tries count only the
event's own failures (waits for an outage in between do not use them up), and the two
kinds of failure back off independently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from services.delivery import metrics
from services.delivery.adapters import KafkaOutcomes, PgDeliveryStore, RedisInboxSignal
from services.delivery.caps import FrequencyCaps
from services.delivery.deliverer import BatchDeliverer
from shared.db import create_pool
from shared.events import BatchDelivered, SendBatch
from shared.failures import dependency_down
from shared.kafka import durable_producer, send_dead_letter
from shared.redis_client import RedisClient
from shared.redis_client import connect as connect_redis
from shared.settings import DeliverySettings
from shared.topics import SENDS

log = logging.getLogger(__name__)

NON_TRANSIENT_ATTEMPTS = 3
# A dead letter carries the original value; one too large for the broker is parked
# with this much of it (and says so) rather than blocking the partition.
DEAD_LETTER_VALUE_FALLBACK_BYTES = 64 * 1024

Deliver = Callable[[SendBatch], Awaitable[BatchDelivered]]
Sleep = Callable[[float], Awaitable[None]]


class DeadLetterWriter:
    """Writes one dead letter (the Kafka producer behind a small callable)."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def __call__(
        self, key: bytes | None, value: bytes | None, where: dict[str, Any], error: str
    ) -> None:
        await send_dead_letter(
            self.producer,
            source_topic=SENDS.name,
            consumer="delivery",
            error=error,
            key=key,
            value=value,
            **where,
        )


WriteDeadLetter = Callable[[bytes | None, bytes | None, dict[str, Any], str], Awaitable[None]]


@dataclass
class Health:
    """The dependencies the worker is waiting for right now (``/readyz`` reports them)."""

    down: dict[str, str] = field(default_factory=dict)

    def mark_down(self, dependency: str, exc: BaseException) -> None:
        if dependency not in self.down:
            metrics.DEPENDENCY_DOWN.labels(dependency).set(1)
        self.down[dependency] = f"{type(exc).__name__}: {exc}"[:300]

    def mark_up(self) -> None:
        for dependency in self.down:
            metrics.DEPENDENCY_DOWN.labels(dependency).set(0)
        self.down.clear()


def backoff(attempt: int, initial: float = 0.2, cap: float = 5.0) -> float:
    """Exponential with full jitter, at most ``cap`` seconds: a dependency that comes back
    is noticed within ``cap`` seconds, and many workers do not retry in step."""
    return random.uniform(0, min(cap, initial * 2 ** min(attempt, 16)))


class DeliveryRuntime:
    """Handles events (several at once: it keeps no state per event besides ``health``):
    the decisions about retrying and dead-lettering."""

    def __init__(
        self,
        deliver: Deliver,
        dead_letter: WriteDeadLetter,
        *,
        attempts: int = NON_TRANSIENT_ATTEMPTS,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.deliver, self.dead_letter = deliver, dead_letter
        self.attempts, self.sleep = attempts, sleep
        self.health = Health()

    async def handle(
        self, key: bytes | None, value: bytes | None, partition: int, offset: int
    ) -> None:
        """Deliver the event or dead-letter it; return only once one of them is done."""
        where: dict[str, Any] = {"partition": partition, "offset": offset}
        try:
            batch = SendBatch.model_validate_json(value or b"")
        except Exception as exc:  # whatever cannot be decoded is bad input
            await self._park(key, value, where, f"invalid SendBatch: {exc}")
            return
        error = await self._deliver(batch, where)
        if error is not None:
            await self._park(key, value, where, error)

    async def _deliver(self, batch: SendBatch, where: dict[str, Any]) -> str | None:
        """Deliver with retries; None once delivered, else the error to dead-letter with."""
        failures, waits = 0, 0
        while True:
            try:
                with metrics.BATCH_SECONDS.time():
                    result = await self.deliver(batch)
            except Exception as exc:  # every failure is classified; none escapes
                failures, waits = await self._after_failure(exc, failures, waits, where)
                if failures >= self.attempts:
                    log.error(
                        "batch could not be delivered, dead-lettering it",
                        extra={"job_id": batch.job_id, "error": repr(exc)[:500], **where},
                    )
                    return f"{type(exc).__name__}: {exc}"
                continue
            self.health.mark_up()
            counts = Counter((o.outcome, o.reason or "") for o in result.outcomes)
            for (outcome, reason), count in counts.items():  # once per batch, not per recipient
                metrics.OUTCOMES.labels(outcome, reason).inc(count)
            return None

    async def _after_failure(
        self, exc: BaseException, failures: int, waits: int, where: dict[str, Any]
    ) -> tuple[int, int]:
        """Count a failure, wait before the next try; (failures of the event's own, waits)."""
        metrics.RETRIES.inc()
        dependency = dependency_down(exc)
        if dependency is not None:
            self.health.mark_down(dependency, exc)
            log.warning(
                "dependency down, retrying the batch until it answers",
                extra={"dependency": dependency, "error": repr(exc)[:300], **where},
            )
            await self.sleep(backoff(waits))
            return failures, waits + 1
        self.health.mark_up()  # whatever was down answered: this failure is the batch's own
        failures += 1
        if failures < self.attempts:
            log.warning(
                "batch failed, retrying",
                extra={"attempt": failures, "error": repr(exc)[:300], **where},
            )
            await self.sleep(backoff(failures - 1))
        return failures, waits

    async def _park(
        self, key: bytes | None, value: bytes | None, where: dict[str, Any], error: str
    ) -> None:
        """Write the dead letter, retrying until it is written. A dead letter the broker
        refuses for itself (too large) is written again with the value cut short."""
        waits, refused = 0, False
        while True:
            body, note = value, error
            if refused and value is not None and len(value) > DEAD_LETTER_VALUE_FALLBACK_BYTES:
                body = value[:DEAD_LETTER_VALUE_FALLBACK_BYTES]
                note = f"{error} [value cut to {len(body)} of {len(value)} bytes]"
            try:
                await self.dead_letter(key, body, where, note)
            except Exception as exc:  # not written: the event must not be acked
                dependency = dependency_down(exc)
                if dependency is not None:
                    self.health.mark_down(dependency, exc)
                refused = refused or dependency is None
                log.warning(
                    "dead letter not written, retrying",
                    extra={"dependency": dependency or "kafka", "error": repr(exc)[:300]},
                )
                await self.sleep(backoff(waits))
                waits += 1
                continue
            metrics.DEAD_LETTERS.inc()
            self.health.mark_up()
            return


@dataclass
class DeliveryClients:
    """The worker's PostgreSQL pool, Redis client and Kafka producer."""

    pool: asyncpg.Pool
    redis: RedisClient
    producer: AIOKafkaProducer
    inbox_cap: int = 200

    @classmethod
    async def connect(
        cls, settings: DeliverySettings, sleep: Sleep = asyncio.sleep
    ) -> DeliveryClients:
        """Connect, retrying with backoff until every dependency answers (the worker is
        not ready meanwhile; it never gives up and never crashes its agent over it)."""
        attempt = 0
        while True:
            try:
                return await cls._connect_once(settings)
            except Exception as exc:  # any dependency missing at start: wait for it
                log.warning(
                    "delivery worker cannot connect yet, retrying",
                    extra={"dependency": dependency_down(exc) or "startup", "error": repr(exc)},
                )
                await sleep(backoff(attempt))
                attempt += 1

    @classmethod
    async def _connect_once(cls, settings: DeliverySettings) -> DeliveryClients:
        pool = await create_pool(settings.database_url, max_size=settings.db_pool_max)
        # A stalled Redis surfaces as a TimeoutError from the calls' own time limits (one per
        # call, not redis-py's per-reply socket timeout, which costs a timer per reply) and
        # the batch is retried (fail-closed).
        redis_client = connect_redis(settings.redis_url, socket_connect_timeout=5)
        producer = durable_producer(settings.kafka_bootstrap, "pigeonhole-delivery")
        try:
            await producer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.stop()
            await redis_client.aclose()
            await pool.close()
            raise
        return cls(pool, redis_client, producer, settings.inbox_cap)

    def runtime(self) -> DeliveryRuntime:
        deliverer = BatchDeliverer(
            PgDeliveryStore(self.pool, self.inbox_cap),
            FrequencyCaps(self.redis, self.pool),  # pool: cap hits recorded, Redis rebuilt
            RedisInboxSignal(self.redis),
            KafkaOutcomes(self.producer),
        )
        return DeliveryRuntime(deliverer.deliver, DeadLetterWriter(self.producer))

    async def close(self) -> None:
        await self.producer.stop()
        await self.redis.aclose()
        await self.pool.close()
