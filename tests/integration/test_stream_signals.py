"""The live stream's wake-up path on the real Redis, single and cluster: a "changed" signal
published for some contacts wakes exactly their streams in another process's hub."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from services.sync.stream import Hub
from shared.inbox_signals import publish_changes
from shared.redis_client import RedisClient
from tests.cluster import any_redis, cluster_client

__all__ = ["any_redis", "cluster_client"]  # fixtures, used by name

pytestmark = pytest.mark.integration


async def test_a_signal_wakes_the_streams_of_the_contacts_named_and_no_other(
    any_redis: RedisClient,
) -> None:
    hub = Hub(any_redis)
    hub.start()
    run = uuid.uuid4().hex[:8]
    contacts = [f"sig-{run}-{i}" for i in range(40)]  # many buckets: several channels
    try:
        with contextlib.ExitStack() as held:
            woken = {c: held.enter_context(hub.listening(c)) for c in contacts}
            assert hub.open_streams == len(contacts)
            async with asyncio.timeout(10):
                await hub.subscribed.wait()
            for event in woken.values():
                event.clear()  # the wake-up every stream gets when the hub subscribes
            await publish_changes(any_redis, contacts[:30])
            async with asyncio.timeout(10):
                await asyncio.gather(*(woken[c].wait() for c in contacts[:30]))
            woken[contacts[0]].clear()
            await publish_changes(any_redis, [contacts[0]])  # after any signal of the first
            async with asyncio.timeout(10):
                await woken[contacts[0]].wait()
            assert not any(woken[c].is_set() for c in contacts[30:])
        assert hub.open_streams == 0
    finally:
        await hub.stop()
