"""The delivery worker's readiness: not ready while it waits for a dependency or cannot
reach Kafka, PostgreSQL or Redis; probes that stay cheap when polled."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import redis.exceptions

from services.delivery.readiness import Probe, readiness_checks
from services.delivery.runtime import DeliveryRuntime
from shared.observability import run_checks


async def test_a_probe_runs_once_however_many_ask_and_again_only_after_its_interval() -> None:
    calls, release = 0, asyncio.Event()

    async def check() -> None:
        nonlocal calls
        calls += 1
        await release.wait()

    probe = Probe(check, interval=3600)
    waiting = [asyncio.create_task(probe()) for _ in range(10)]
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(*waiting)
    await probe()
    assert calls == 1


async def test_a_failing_probe_says_so_until_a_later_run_succeeds() -> None:
    answers = [ConnectionError("no broker"), None]

    async def check() -> None:
        answer = answers.pop(0)
        if answer is not None:
            raise answer

    probe = Probe(check, interval=0)
    ready, results = await run_checks({"kafka": probe})
    assert not ready and "no broker" in results["kafka"]
    assert (await run_checks({"kafka": probe}))[0]


class FakeCluster:
    def brokers(self) -> list[Any]:
        return [SimpleNamespace(nodeId=1)]


class FakeKafkaClient:
    """aiokafka's client as the producer holds it: is a connection to a broker up?"""

    up = True
    cluster = FakeCluster()

    async def ready(self, node_id: int) -> bool:
        return self.up


class FakeConsumer:
    up = True

    def assignment(self) -> set[Any]:
        return set()

    async def highwaters(self, *partitions: Any) -> dict[Any, int]:
        if not self.up:
            raise ConnectionError("consumer lost its broker")
        return dict.fromkeys(partitions, 0)


class FakePool:
    async def fetchval(self, query: str) -> int:
        return 1


class FakeRedis:
    up = True

    async def ping(self) -> bool:
        if not self.up:
            raise redis.exceptions.ConnectionError("Connection refused")
        return True


async def _noop(*args: Any) -> Any:
    return None


def holder() -> Any:
    producer = SimpleNamespace(client=FakeKafkaClient())
    clients = SimpleNamespace(pool=FakePool(), redis=FakeRedis(), producer=producer)
    return SimpleNamespace(clients=clients, runtime=DeliveryRuntime(_noop, _noop))


async def test_ready_only_while_every_dependency_answers() -> None:
    h, consumer = holder(), FakeConsumer()
    checks = readiness_checks(h, lambda: consumer)
    assert (await run_checks(checks)) == (
        True, {"agent": "ok", "postgres": "ok", "redis": "ok", "kafka": "ok"}
    )  # fmt: skip

    h.clients.redis.up = False
    ready, results = await run_checks(checks)
    assert not ready and results["redis"].startswith("error") and results["kafka"] == "ok"
    h.clients.redis.up = True

    h.runtime.health.mark_down("postgres", ConnectionRefusedError("refused"))
    ready, results = await run_checks(checks)
    assert not ready and "postgres" in results["agent"]
    h.runtime.health.mark_up()
    assert (await run_checks(checks))[0]


async def test_not_ready_when_the_producer_or_the_consumer_loses_kafka() -> None:
    h, consumer = holder(), FakeConsumer()
    h.clients.producer.client.up = False
    ready, results = await run_checks(readiness_checks(h, lambda: consumer))
    assert not ready and "no Kafka broker" in results["kafka"]
    h.clients.producer.client.up, consumer.up = True, False
    ready, results = await run_checks(readiness_checks(h, lambda: consumer))
    assert not ready and "consumer lost its broker" in results["kafka"]


async def test_not_ready_before_the_agent_connected() -> None:
    empty = SimpleNamespace(clients=None, runtime=None)
    ready, results = await run_checks(readiness_checks(empty, FakeConsumer))
    assert not ready and all(r.startswith("error") for r in results.values())
