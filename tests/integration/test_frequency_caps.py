"""The cap script on the real Redis, single and Cluster (tests/cluster.py): atomic under
concurrency, exact under redelivery, rolling windows."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from services.delivery.caps import FrequencyCaps, app_caps, tag_caps
from shared.redis_client import RedisClient

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.fixture
async def caps(any_redis: RedisClient) -> AsyncIterator[FrequencyCaps]:
    yield FrequencyCaps(any_redis)


def contact() -> str:
    return f"caps-{uuid.uuid4().hex}"


async def test_concurrent_sends_racing_for_the_last_slots_admit_exactly_the_limit(
    caps: FrequencyCaps,
) -> None:
    who, limit = contact(), app_caps({"app": {"perHour": 3}})
    results = await asyncio.gather(*(caps.admit(job, [who], limit, NOW) for job in range(20)))
    assert sum(1 for over in results if not over) == 3


async def test_the_same_send_counts_once_however_often_it_is_redelivered(
    caps: FrequencyCaps,
) -> None:
    who, limit = contact(), app_caps({"app": {"perDay": 2}})
    for _ in range(5):
        assert await caps.admit(1, [who], limit, NOW) == set()
    assert await caps.admit(2, [who], limit, NOW) == set()
    assert await caps.admit(3, [who], limit, NOW) == {who}


async def test_windows_roll(caps: FrequencyCaps) -> None:
    who, limit = contact(), app_caps({"app": {"perMinute": 1, "perHour": 2}})
    assert await caps.admit(1, [who], limit, NOW) == set()
    assert await caps.admit(2, [who], limit, NOW + timedelta(seconds=30)) == {who}  # minute
    assert await caps.admit(3, [who], limit, NOW + timedelta(seconds=61)) == set()
    assert await caps.admit(4, [who], limit, NOW + timedelta(minutes=30)) == {who}  # hour
    assert await caps.admit(5, [who], limit, NOW + timedelta(minutes=61)) == set()


async def test_a_batch_is_decided_per_contact_and_over_every_cap(caps: FrequencyCaps) -> None:
    fresh, busy = contact(), contact()
    limits = app_caps({"app": {"perDay": 5}}) + tag_caps({"promo": (1, 3600)})
    assert await caps.admit(1, [busy], limits, NOW) == set()
    assert await caps.admit(2, [fresh, busy], limits, NOW) == {busy}  # the tag cap bites
    assert await caps.admit(3, [fresh], app_caps({"app": {"perDay": 5}}), NOW) == set()
