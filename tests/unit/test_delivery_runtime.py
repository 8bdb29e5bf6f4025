"""The delivery runtime's decisions with small fakes: what is retried, for how long, what
is dead-lettered, and that ``handle`` returns (so the agent acks) only once an event is
delivered or parked."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
import redis.exceptions
from aiokafka import errors as kafka_errors

from services.delivery.runtime import DEAD_LETTER_VALUE_FALLBACK_BYTES, DeliveryRuntime
from shared.events import BatchDelivered, Recipient, SendBatch, SendOptions
from shared.failures import dependency_down

BATCH = SendBatch(
    job_id=7,
    batch_seq=0,
    bucket=0,
    content_id="c",
    content_kind="inapp",
    app_keys=["app"],
    options=SendOptions(),
    launched_at=datetime(2026, 11, 21, tzinfo=UTC),
    recipients=[Recipient(contact_id="a")],
)
VALUE = BATCH.model_dump_json().encode()


def delivered() -> BatchDelivered:
    return BatchDelivered(job_id=7, batch_seq=0, content_id="c", outcomes=[])


# What ``datetime.fromtimestamp`` raised on the hostile attribute: an OSError
# raised by no client, so bad input (the old rule took every OSError for an outage).
FORMULA_OSERROR = OSError(75, "Value too large for defined data type")


class Script:
    """Raises the scripted errors in order, then succeeds (returning ``result()``)."""

    def __init__(self, errors: list[BaseException], result: Callable[[], Any] = delivered):
        self.errors, self.result, self.calls = list(errors), result, 0

    async def __call__(self, *args: Any) -> Any:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result()


class DeadLetters:
    def __init__(self, errors: list[BaseException] | None = None) -> None:
        self.failing = Script(errors or [], result=lambda: None)
        self.written: list[tuple[bytes | None, bytes | None, str]] = []

    async def __call__(
        self, key: bytes | None, value: bytes | None, where: dict[str, Any], error: str
    ) -> None:
        await self.failing()
        self.written.append((key, value, error))


class Sleeps:
    """Records each wait (and what readiness said meanwhile) without waiting."""

    def __init__(self) -> None:
        self.runtime: DeliveryRuntime | None = None
        self.waits: list[float] = []
        self.down_meanwhile: list[set[str]] = []
        self.fifty = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        assert self.runtime is not None
        self.waits.append(seconds)
        self.down_meanwhile.append(set(self.runtime.health.down))
        if len(self.waits) >= 50:
            self.fifty.set()
        await asyncio.sleep(0)


def runtime(deliver: Script, dead: DeadLetters) -> tuple[DeliveryRuntime, Sleeps]:
    sleeps = Sleeps()
    rt = DeliveryRuntime(deliver, dead, sleep=sleeps)
    sleeps.runtime = rt
    return rt, sleeps


POSTGRES_DOWN = asyncpg.CannotConnectNowError("the database system is starting up")
REDIS_DOWN = redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379")
KAFKA_DOWN = kafka_errors.KafkaConnectionError("No connection to node with id 1")


@pytest.mark.parametrize(
    "error", [ValueError("bad value"), FORMULA_OSERROR, KeyError("x"), RecursionError()]
)
async def test_bad_input_is_tried_three_times_then_dead_lettered(error: Exception) -> None:
    deliver, dead = Script([error] * 5), DeadLetters()
    rt, sleeps = runtime(deliver, dead)
    await rt.handle(b"k", VALUE, 0, 1)
    assert deliver.calls == 3
    [(key, value, message)] = dead.written
    assert (key, value) == (b"k", VALUE)
    assert type(error).__name__ in message
    assert rt.health.down == {} and sleeps.down_meanwhile == [set(), set()]


@pytest.mark.parametrize(
    ("error", "dependency"),
    [(POSTGRES_DOWN, "postgres"), (REDIS_DOWN, "redis"), (KAFKA_DOWN, "kafka")],
)
async def test_a_dependency_down_is_retried_until_it_answers_and_never_dead_lettered(
    error: Exception, dependency: str
) -> None:
    deliver, dead = Script([error] * 40), DeadLetters()
    rt, sleeps = runtime(deliver, dead)
    await rt.handle(b"k", VALUE, 0, 1)
    assert deliver.calls == 41
    assert dead.written == []
    assert all(down == {dependency} for down in sleeps.down_meanwhile)  # not ready meanwhile
    assert rt.health.down == {}  # ready again once it answered
    assert max(sleeps.waits) <= 5.0


async def test_outage_retries_do_not_use_up_the_tries_of_bad_input() -> None:
    bad = ValueError("bad")
    deliver = Script([POSTGRES_DOWN, bad, REDIS_DOWN, bad, KAFKA_DOWN, POSTGRES_DOWN])
    dead = DeadLetters()
    rt, sleeps = runtime(deliver, dead)
    await rt.handle(b"k", VALUE, 0, 1)
    assert (deliver.calls, dead.written) == (7, [])
    # a failure of the batch's own means the dependency answered: ready again meanwhile
    assert sleeps.down_meanwhile == [
        {"postgres"}, set(), {"redis"}, set(), {"kafka"}, {"kafka", "postgres"}
    ]  # fmt: skip


@pytest.mark.parametrize(
    "value",
    [
        b"not json",
        b'{"job_id": "not a batch"',
        b"[]",
        b"",
        VALUE.replace(b'"job_id":7', b'"job_id":18446744073709551616'),  # beyond bigint
        VALUE.replace(b'"batch_seq":0', b'"batch_seq":' + b"9" * 5000),
        VALUE.replace(b'[{"contact_id":"a","personalization":{}}]', b"[]"),
    ],
)
async def test_an_undecodable_event_is_dead_lettered_at_once(value: bytes) -> None:
    deliver, dead = Script([]), DeadLetters()
    rt, _ = runtime(deliver, dead)
    await rt.handle(b"k", value, 3, 9)
    assert deliver.calls == 0
    [(_, parked, error)] = dead.written
    assert parked == value and error.startswith("invalid SendBatch")


async def test_a_dead_letter_kafka_will_not_take_is_retried_and_the_event_not_let_go() -> None:
    deliver, dead = Script([ValueError("bad")] * 3), DeadLetters([KAFKA_DOWN] * 1000)
    rt, sleeps = runtime(deliver, dead)
    task = asyncio.create_task(rt.handle(b"k", VALUE, 0, 1))
    await sleeps.fifty.wait()
    assert not task.done()  # still holding the event: the agent cannot ack it
    assert sleeps.down_meanwhile[-1] == {"kafka"}
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert dead.written == []


async def test_a_dead_letter_written_once_kafka_is_back() -> None:
    deliver, dead = Script([ValueError("bad")] * 3), DeadLetters([KAFKA_DOWN] * 5)
    rt, _ = runtime(deliver, dead)
    await rt.handle(b"k", VALUE, 0, 1)
    assert len(dead.written) == 1 and rt.health.down == {}


async def test_a_dead_letter_too_large_for_the_broker_is_written_with_the_value_cut() -> None:
    huge = b"x" * (DEAD_LETTER_VALUE_FALLBACK_BYTES * 20)
    deliver = Script([])
    dead = DeadLetters([kafka_errors.MessageSizeTooLargeError("too large")])
    rt, _ = runtime(deliver, dead)
    await rt.handle(b"k", huge, 0, 1)
    [(_, value, error)] = dead.written
    assert value == huge[:DEAD_LETTER_VALUE_FALLBACK_BYTES]
    assert f"of {len(huge)} bytes" in error


async def test_a_stalled_redis_is_a_dependency_down_not_bad_input() -> None:
    """A time limit around a Redis call that never answers: asyncio raises TimeoutError,
    the client raised the cancellation inside it, so the rule blames Redis."""
    silent = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    client = aioredis.from_url(f"redis://127.0.0.1:{port}/0")
    try:
        with pytest.raises(TimeoutError) as stalled:
            async with asyncio.timeout(0.2):
                await client.ping()
    finally:
        await client.aclose()
        silent.close()
    assert dependency_down(stalled.value) == "redis"
    with pytest.raises(TimeoutError) as plain:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(1)
    assert dependency_down(plain.value) is None
