"""How a publisher consumer handles a record so that no record can stop the ones after it.

The rule (``shared.failures.dependency_down`` decides which case applies):

- A dependency is down (PostgreSQL, Kafka): retried with backoff until it answers, never
  skipped and never dead-lettered, so an outage only pauses consumption.
- Anything else (a record that does not decode, one the API would refuse, one the
  database refuses, an unexpected exception): a few tries, then that record alone goes to
  ``pigeonhole.dlq`` with the error, and the rest of the poll is handled.
- A dead letter that cannot be produced is retried until it is; the poll's offsets are
  committed only once every record is handled or dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeAlias, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from services.publisher.errors import ApiError
from shared.failures import dependency_down
from shared.kafka import send_dead_letter

log = logging.getLogger(__name__)
Record: TypeAlias = ConsumerRecord[bytes, bytes]
T = TypeVar("T")
M = TypeVar("M")
Sleep = Callable[[float], Awaitable[None]]

TRIES = 3  # for a failure that is not an outage: enough for a deadlock or a lost race
OUTAGE_BACKOFF_MAX_SECONDS = 10.0


class Refused(Exception):
    """The record itself is wrong: dead-letter it at once, trying again cannot help."""


def reason_of(exc: BaseException) -> str:
    """The error as an operator reads it in the dead letter."""
    if isinstance(exc, ApiError):
        fields = [f"{k}: {v[0]}" for k, v in exc.fields.items()]
        return "; ".join([*exc.general, *fields]) or str(exc)
    if isinstance(exc, Refused):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class RecordHandler:
    """Runs the work for records of one consumer under the rule above."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        consumer: str,
        *,
        tries: int = TRIES,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.producer, self.consumer, self.tries, self.sleep = producer, consumer, tries, sleep

    async def attempt(self, work: Callable[[], Awaitable[T]], *, tries: int | None = None) -> T:
        """``work()``, retried forever while a dependency is down and ``tries`` times for
        anything else; a refusal (bad record, API error) is raised at once."""
        failures, outages = 0, 0
        while True:
            try:
                return await work()
            except (Refused, ApiError, ValidationError):
                raise
            except Exception as exc:
                dependency = dependency_down(exc)
                if dependency is None:
                    failures += 1
                    if failures >= (tries or self.tries):
                        raise
                    delay = 0.05 * failures
                else:
                    outages += 1
                    delay = min(OUTAGE_BACKOFF_MAX_SECONDS, 0.2 * 2 ** min(outages, 6))
                    log.warning(
                        "dependency down: retrying the record",
                        extra={"dependency": dependency, "consumer": self.consumer},
                    )
            await self.sleep(delay)

    async def each(self, record: Record, work: Callable[[], Awaitable[object]]) -> bool:
        """Handle one record; False when it was dead-lettered instead."""
        try:
            await self.attempt(work)
            return True
        except Exception as exc:
            await self.dead_letter(record, reason_of(exc))
            return False

    async def all_or_each(
        self, items: list[tuple[Record, M]], write: Callable[[list[M]], Awaitable[object]]
    ) -> None:
        """One set-based ``write`` of the whole poll; when it fails for a reason other
        than an outage, one write per record, so only the culprits are dead-lettered."""
        if not items:
            return
        try:
            await self.attempt(partial(write, [item for _, item in items]), tries=1)
        except Exception as exc:
            log.warning(
                "set-based write failed; writing record by record",
                extra={"consumer": self.consumer, "error": reason_of(exc)[:300]},
            )
            for record, item in items:
                await self.each(record, partial(write, [item]))

    async def dead_letter(self, record: Record, error: str) -> None:
        """Park ``record`` on the DLQ; retried until Kafka takes it (the poll's offsets
        are not committed before that)."""
        tries = 0
        while True:
            try:
                await send_dead_letter(
                    self.producer, source_topic=record.topic, consumer=self.consumer,
                    error=error, key=record.key, value=record.value,
                    partition=record.partition, offset=record.offset,
                )  # fmt: skip
                return
            except Exception as exc:
                tries += 1
                log.warning(
                    "dead letter not produced; retrying",
                    extra={"dependency": "kafka", "consumer": self.consumer,
                           "error": reason_of(exc)[:300]},
                )  # fmt: skip
                await self.sleep(min(OUTAGE_BACKOFF_MAX_SECONDS, 0.2 * 2 ** min(tries, 6)))
