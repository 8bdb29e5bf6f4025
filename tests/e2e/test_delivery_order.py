"""Batches of one partition are filed in the order they were produced, even with several
batches in flight: a contact's messages (its batches all travel its bucket's partition)
reach its inbox in the order its sends were scheduled, so "newest first" holds."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from shared.settings import CommonSettings
from tests.e2e.conftest import Operator
from tests.e2e.test_dedupe_after_purge import one_batch
from tests.kafka_tap import produce_batches

SENDS_TO_ONE_CONTACT = 24


async def test_one_contacts_batches_are_filed_in_the_order_they_were_produced(
    operator: Operator, pool: asyncpg.Pool, settings: CommonSettings
) -> None:
    who, content_id = await operator.contact("order"), await operator.inbox_message("t")
    others = [await operator.contact("elsewhere") for _ in range(8)]
    first_job = -int(time.time() * 1000) * 100
    jobs = [first_job - n for n in range(SENDS_TO_ONE_CONTACT)]
    batches = []
    for n, job_id in enumerate(jobs):  # the contact's batches, with others' in between
        batches.append(one_batch(job_id, content_id, "inbox", operator.app["appKey"], who))
        other = others[n % len(others)]
        batches.append(one_batch(job_id, content_id, "inbox", operator.app["appKey"], other))
    await produce_batches(settings.kafka_bootstrap, batches)

    deadline = time.monotonic() + 60
    while True:
        rows = await pool.fetch(
            "SELECT send_job_id FROM inbox_entries WHERE contact_id = $1 ORDER BY id", who
        )
        if len(rows) == SENDS_TO_ONE_CONTACT or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert [r["send_job_id"] for r in rows] == jobs
