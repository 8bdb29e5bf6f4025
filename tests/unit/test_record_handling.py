"""The rule every publisher consumer follows, with small fakes: an outage is retried until
it ends, a bad record is dead-lettered after a few tries, a dead letter that cannot be
produced is retried, and a failed set-based write dead-letters only its culprits."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import ConsumerRecord

from services.publisher.ingest.consumers import consume
from services.publisher.ingest.record_handling import Record, RecordHandler, Refused
from shared.events import DeadLetter


class FakeProducer:
    """Takes dead letters; the first ``fail`` sends raise as if the broker were down."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.letters: list[DeadLetter] = []

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        if self.fail:
            self.fail -= 1
            raise KafkaConnectionError("broker down")
        self.letters.append(DeadLetter.model_validate_json(value))


async def no_sleep(_: float) -> None:
    return None


def record(offset: int, value: bytes = b"{}") -> Record:
    return ConsumerRecord(
        topic="pigeonhole.contacts", partition=0, offset=offset, timestamp=0,
        timestamp_type=0, key=f"k{offset}".encode(), value=value, checksum=None,
        serialized_key_size=0, serialized_value_size=0, headers=[],
    )  # fmt: skip


def handler(producer: FakeProducer) -> RecordHandler:
    return RecordHandler(producer, "publisher-test", sleep=no_sleep)


class Work:
    """Raises each of ``errors`` in turn, then succeeds."""

    def __init__(self, *errors: Exception) -> None:
        self.errors, self.calls = list(errors), 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


async def test_a_record_the_database_refuses_is_dead_lettered_after_three_tries() -> None:
    producer = FakeProducer()
    work = Work(*[asyncpg.UntranslatableCharacterError("\\u0000")] * 5)
    assert await handler(producer).each(record(7), work) is False
    assert work.calls == 3
    assert [(d.offset, d.consumer) for d in producer.letters] == [(7, "publisher-test")]
    assert "UntranslatableCharacterError" in producer.letters[0].error


async def test_an_outage_is_retried_until_it_ends_and_nothing_is_dead_lettered() -> None:
    producer = FakeProducer()
    work = Work(*[asyncpg.CannotConnectNowError("starting up")] * 12)
    assert await handler(producer).each(record(1), work) is True
    assert work.calls == 13
    assert producer.letters == []


async def test_a_refused_record_is_dead_lettered_at_once_with_the_reason() -> None:
    producer = FakeProducer()
    work = Work(Refused("invalid ContactUpserted: not JSON"))
    assert await handler(producer).each(record(2), work) is False
    assert work.calls == 1
    assert producer.letters[0].error == "invalid ContactUpserted: not JSON"


async def test_a_dead_letter_is_retried_until_kafka_takes_it() -> None:
    producer = FakeProducer(fail=4)
    await handler(producer).dead_letter(record(3), "bad")
    assert len(producer.letters) == 1


async def test_a_failed_set_write_falls_back_to_one_write_per_record() -> None:
    producer = FakeProducer()
    written: list[list[int]] = []

    async def write(items: list[int]) -> None:
        if 13 in items:
            raise asyncpg.NumericValueOutOfRangeError("bigint out of range")
        written.append(items)

    items: list[tuple[Record, Any]] = [(record(n), n) for n in (11, 12, 13, 14)]
    await handler(producer).all_or_each(items, write)
    assert written == [[11], [12], [14]]
    assert [d.offset for d in producer.letters] == [13]


async def test_a_set_write_that_succeeds_is_one_write() -> None:
    written: list[list[int]] = []

    async def write(items: list[int]) -> None:
        written.append(items)

    await handler(FakeProducer()).all_or_each([(record(n), n) for n in (1, 2)], write)
    assert written == [[1, 2]]


@pytest.mark.parametrize("error", [ValueError("x"), KeyError("y"), RuntimeError("z")])
async def test_any_unexpected_exception_is_bounded_then_dead_lettered(error: Exception) -> None:
    producer = FakeProducer()
    assert await handler(producer).each(record(5), Work(error, error, error)) is False
    assert len(producer.letters) == 1


class FakeConsumer:
    """Hands out the same poll until it is committed; records seeks and commits."""

    def __init__(self, records: list[Record]) -> None:
        self.records, self.commits = records, 0
        self.seeks: list[tuple[int, int]] = []
        self.committed = asyncio.Event()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def subscription(self) -> set[str]:
        return {"pigeonhole.contacts"}

    async def getmany(self, timeout_ms: int) -> dict[Any, list[Record]]:
        if self.committed.is_set():
            await asyncio.sleep(3600)
        return {"tp": list(self.records)}

    def seek(self, tp: Any, offset: int) -> None:
        self.seeks.append((tp.partition, offset))

    async def commit(self) -> None:
        self.commits += 1
        self.committed.set()


async def test_a_handler_that_raises_never_ends_the_consumer_and_its_poll_is_read_again() -> None:
    consumer = FakeConsumer([record(40), record(41)])
    calls = 0

    async def handle(records: list[Record]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in a handler")

    task = asyncio.create_task(consume(consumer, handle))
    await asyncio.wait_for(consumer.committed.wait(), timeout=10)
    assert not task.done()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert calls == 2
    assert consumer.seeks == [(0, 40)]  # the failed poll, from its first offset
    assert consumer.commits == 1  # only after the poll was handled
