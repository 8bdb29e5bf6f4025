"""The delivery worker's clients and the per-event handling around BatchDeliverer:
decode, deliver with retries, dead-letter what can never succeed."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import redis.asyncio as aioredis
import redis.exceptions
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError
from tenacity import AsyncRetrying, RetryCallState, wait_exponential_jitter

from services.delivery import metrics
from services.delivery.adapters import KafkaOutcomes, PgDeliveryStore, RedisInboxSignal
from services.delivery.caps import FrequencyCaps
from services.delivery.handlers import BatchDeliverer
from shared.db import create_pool
from shared.events import BatchScheduled
from shared.kafka import durable_producer, send_dead_letter
from shared.settings import DeliverySettings
from shared.topics import SENDS

log = logging.getLogger(__name__)

# Errors that say a dependency is down, not that the event is bad. A batch that meets one
# is retried until the dependency is back, however long that takes: the worker never
# skips a batch, and never files a message without its Redis/PostgreSQL side effects
# (fail-closed). Any other error is retried a few times, then the event is dead-lettered.
TRANSIENT = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
NON_TRANSIENT_ATTEMPTS = 3


def _should_retry(state: RetryCallState) -> bool:
    if state.outcome is None or not state.outcome.failed:
        return False
    exc = state.outcome.exception()
    if isinstance(exc, TRANSIENT):
        return True
    return state.attempt_number < NON_TRANSIENT_ATTEMPTS


def _before_sleep(state: RetryCallState) -> None:
    metrics.RETRIES.inc()
    exc = state.outcome.exception() if state.outcome else None
    log.warning(
        "batch failed, retrying", extra={"attempt": state.attempt_number, "error": repr(exc)}
    )


class DeliveryRuntime:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis_client: aioredis.Redis,
        producer: AIOKafkaProducer,
        inbox_cap: int = 200,
    ) -> None:
        self.pool, self.redis, self.producer = pool, redis_client, producer
        self.deliverer = BatchDeliverer(
            PgDeliveryStore(pool, inbox_cap),
            FrequencyCaps(redis_client, pool),  # pool: cap hits recorded, Redis rebuilt
            RedisInboxSignal(redis_client),
            KafkaOutcomes(producer),
        )

    @classmethod
    async def connect(cls, settings: DeliverySettings) -> DeliveryRuntime:
        pool = await create_pool(settings.database_url, max_size=settings.db_pool_max)
        # A stalled Redis surfaces as a TimeoutError from the calls' own time limits (one per
        # call, not redis-py's per-reply socket timeout, which costs a timer per reply) and
        # the batch is retried (fail-closed).
        redis_client = aioredis.from_url(settings.redis_url, socket_connect_timeout=5)
        producer = durable_producer(settings.kafka_bootstrap, "pigeonhole-delivery")
        await producer.start()
        return cls(pool, redis_client, producer, settings.inbox_cap)

    async def close(self) -> None:
        await self.producer.stop()
        await self.redis.aclose()
        await self.pool.close()

    async def handle(
        self, key: bytes | None, value: bytes | None, partition: int, offset: int
    ) -> None:
        where: dict[str, Any] = {"partition": partition, "offset": offset}
        try:
            batch = BatchScheduled.model_validate_json(value or b"")
        except ValidationError as exc:
            await self._dead_letter(key, value, where, f"invalid SendBatch: {exc}")
            return
        try:
            async for attempt in AsyncRetrying(
                retry=_should_retry,
                wait=wait_exponential_jitter(initial=0.2, max=10),
                before_sleep=_before_sleep,
                reraise=True,
            ):
                with attempt, metrics.BATCH_SECONDS.time():
                    result = await self.deliverer.deliver(batch)
        except Exception as exc:
            log.exception("batch could not be delivered", extra={"job_id": batch.job_id, **where})
            await self._dead_letter(key, value, where, f"{type(exc).__name__}: {exc}")
            return
        for outcome in result.outcomes:
            metrics.OUTCOMES.labels(outcome.outcome, outcome.reason or "").inc()

    async def _dead_letter(
        self, key: bytes | None, value: bytes | None, where: dict[str, Any], error: str
    ) -> None:
        metrics.DEAD_LETTERS.inc()
        await send_dead_letter(
            self.producer,
            source_topic=SENDS.name,
            consumer="delivery",
            error=error,
            key=key,
            value=value,
            **where,
        )
