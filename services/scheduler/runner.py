"""Runs claimed send jobs: page the audience, plan batches, produce, checkpoint.

A page's batches are produced together and checkpointed once, after Kafka acknowledged
every one of them (acks=all), so a crash between the two re-sends that page on resume:
harmless, because delivery files at most one inbox entry per (send job, contact), and a
re-sent batch keeps its batch_seq and event_id. No recipient is ever skipped. A job that
pauses between batches (``pause_ms``) goes one batch at a time, checkpointed each.

PostgreSQL, Python and Kafka work at the same time: the next page is read while this one
is planned, produced and checkpointed. The read runs ahead of the checkpoint, never the
checkpoint ahead of Kafka's acknowledgement, so a resume starts from the checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Sequence

import asyncpg
from aiokafka import AIOKafkaProducer

from services.scheduler import metrics, repository
from services.scheduler.lease import Lease, LeaseLost
from services.scheduler.planning import PlannedBatch, encode_batch, plan_batches
from services.scheduler.repository import ClaimedJob
from shared.events import SendBatch, SendOptions
from shared.failures import dependency_down
from shared.topics import MAX_EVENT_BYTES, SENDS, partition_of

log = logging.getLogger(__name__)
# Recipients read per page, in batches; a short batch at a page's end is carried over to
# the next page rather than sent short. A page is also what a crash may send twice.
PAGE_BATCHES = 4


class JobRunner:
    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        owner: str,
        lease_seconds: int,
        stopping: asyncio.Event | None = None,
    ) -> None:
        # Set on SIGTERM: the page in flight finishes and is checkpointed, then the job is
        # released for any scheduler to resume.
        self.stopping = stopping or asyncio.Event()
        self.pool = pool
        self.producer = producer
        self.owner = owner
        self.lease_seconds = lease_seconds

    async def run_one(self) -> bool:
        """Claim and run one due job; False when none is due."""
        job = await repository.claim_due_job(self.pool, self.owner, self.lease_seconds)
        if job is None:
            return False
        log.info("send job claimed", extra={"job_id": job.id, "cursor": list(job.cursor)})
        try:
            async with Lease(self.pool, job.id, self.owner, self.lease_seconds) as lease:
                await self._run(job, lease)
        except LeaseLost as exc:
            log.warning(
                "send job lease lost; stopping", extra={"job_id": job.id, "error": str(exc)}
            )
            return True
        except JobFailed:  # recorded on the job (status failed, error) and logged
            return True
        finally:
            await repository.release(self.pool, job.id, self.owner)
        return True

    async def _run(self, job: ClaimedJob, lease: Lease) -> None:
        seq = job.batches_sent
        options = SendOptions.model_validate(job.options)
        pages = _Pages(self.pool, job, job.batch_size * PAGE_BATCHES)
        carried: list[asyncpg.Record] = []  # a short batch left for the next page
        try:
            while True:
                rows, last = await pages.next()
                rows = carried + rows
                batches = plan_batches(rows, job.batch_size, more_may_follow=not last)
                carried = rows[sum(len(b.recipients) for b in batches) :]
                for group in _groups(batches, one_at_a_time=job.pause_ms > 0):
                    if not await self._send(job, options, lease, seq, group):
                        return
                    seq += len(group)
                if last:
                    await repository.finish(self.pool, job.id, self.owner)
                    metrics.JOBS_COMPLETED.inc()
                    log.info("send job completed", extra={"job_id": job.id, "batches": seq})
                    return
        finally:
            await pages.close()

    async def _send(
        self,
        job: ClaimedJob,
        options: SendOptions,
        lease: Lease,
        seq: int,
        batches: Sequence[PlannedBatch],
    ) -> bool:
        """Produce and checkpoint batches numbered from ``seq``; False if the job is to stop
        (paused, cancelled, or this scheduler is stopping)."""
        lease.check()
        await self._produce(job, options, seq, batches)
        status = await repository.checkpoint(
            self.pool, job.id, self.owner, self.lease_seconds, batches[-1].last_key,
            recipients=sum(len(b.recipients) for b in batches), batches=len(batches),
        )  # fmt: skip
        if status is None:
            raise LeaseLost(f"send job {job.id}: another scheduler holds the lease")
        if status != "running" or self.stopping.is_set():
            log.info("send job stopped", extra={"job_id": job.id, "status": status})
            return False
        return not job.pause_ms or await self._pause(job)

    async def _pause(self, job: ClaimedJob) -> bool:
        """The operator's pause between batches; False if the job was paused or cancelled
        meanwhile (honoured at once)."""
        await asyncio.sleep(job.pause_ms / 1000)
        status = await repository.status(self.pool, job.id)
        if status != "running":
            log.info("send job stopped", extra={"job_id": job.id, "status": status})
            return False
        return True

    async def _produce(
        self, job: ClaimedJob, options: SendOptions, seq: int, batches: Sequence[PlannedBatch]
    ) -> None:
        """Produce batches numbered from ``seq`` together and wait until Kafka acknowledged
        every one. A batch Kafka can never take (too large, say) fails the job with the
        error, instead of leaving it to be re-claimed first forever; an outage raises, and
        the job resumes from its checkpoint."""
        values = [_encode(job, options, seq + i, batch) for i, batch in enumerate(batches)]
        try:
            for i, value in enumerate(values):
                if len(value) > MAX_EVENT_BYTES:
                    raise BatchTooLarge(
                        f"batch {seq + i} is {len(value)} bytes; "
                        f"a Kafka message holds {MAX_EVENT_BYTES}"
                    )
            partitions = len(await self.producer.partitions_for(SENDS.name))
            started = time.monotonic()
            acks = []
            for batch, value in zip(batches, values, strict=True):
                key, partition = str(batch.bucket).encode(), partition_of(batch.bucket, partitions)
                acks.append(await self.producer.send(SENDS.name, value, key, partition=partition))
            await asyncio.gather(*acks)
        except Exception as exc:
            if dependency_down(exc) is not None:
                raise
            error = f"{type(exc).__name__}: {exc}"
            await repository.fail(self.pool, job.id, self.owner, error)
            log.error("send job failed", extra={"job_id": job.id, "error": error})
            raise JobFailed(error) from exc
        elapsed = time.monotonic() - started
        for batch in batches:  # they travel together: each took the whole wait
            metrics.PRODUCE_SECONDS.observe(elapsed)
            metrics.BATCHES.inc()
            metrics.RECIPIENTS.inc(len(batch.recipients))


class _Pages:
    """The job's audience page by page from its checkpoint, each page read while the one
    before it is planned and produced."""

    def __init__(self, pool: asyncpg.Pool, job: ClaimedJob, size: int) -> None:
        self.pool, self.job, self.size = pool, job, size
        self._next = asyncio.create_task(self._read(job.cursor))

    async def _read(self, after: tuple[int, str]) -> list[asyncpg.Record]:
        return await repository.fetch_audience_page(self.pool, self.job, after, self.size)

    async def next(self) -> tuple[list[asyncpg.Record], bool]:
        """The next page, and whether it is the last (a short page)."""
        rows = await self._next
        if len(rows) < self.size:
            return rows, True
        self._next = asyncio.create_task(self._read((rows[-1][0], rows[-1][1])))
        return rows, False

    async def close(self) -> None:
        """Drop a page read ahead that will not be used (the job stopped or failed)."""
        self._next.cancel()
        await asyncio.wait([self._next])
        if not self._next.cancelled():
            self._next.exception()  # retrieved: however the unused read ended, it is moot


def _groups(
    batches: list[PlannedBatch], *, one_at_a_time: bool
) -> Iterator[Sequence[PlannedBatch]]:
    """What is produced and checkpointed together: the whole page, or with a pause
    between batches, each batch on its own."""
    if one_at_a_time:
        yield from ([batch] for batch in batches)
    elif batches:
        yield batches


def _encode(job: ClaimedJob, options: SendOptions, seq: int, batch: PlannedBatch) -> bytes:
    """The SendBatch event; (job id, batch_seq) and the event_id made of them are stable
    across restarts, so delivery recognises a re-sent batch."""
    envelope = SendBatch.model_construct(
        event_id=f"job-{job.id}-batch-{seq}",
        job_id=job.id,
        batch_seq=seq,
        bucket=batch.bucket,
        content_id=job.content_id,
        content_kind=job.content_kind,
        app_keys=job.app_keys,
        options=options,
        launched_at=job.launched_at,
        recipients=[],  # encode_batch writes the batch's own
    )
    return encode_batch(envelope, batch)


class BatchTooLarge(Exception):
    """A planned batch larger than a Kafka message (its envelope grew past the limit)."""


class JobFailed(Exception):
    """The job was marked failed; its run stops."""
