"""Runs claimed send jobs: page the audience, plan batches, produce, checkpoint.

A batch's checkpoint is written only after Kafka acknowledged it (acks=all), so a crash
between the two re-sends that batch on resume: harmless, because delivery files at most
one inbox entry per (send job, contact). No recipient is ever skipped.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from aiokafka import AIOKafkaProducer

from services.scheduler import metrics, repository
from services.scheduler.lease import Lease, LeaseLost
from services.scheduler.planning import PlannedBatch, plan_batches
from services.scheduler.repository import ClaimedJob
from shared.events import SendBatch, SendOptions
from shared.failures import dependency_down
from shared.topics import MAX_EVENT_BYTES, SENDS, partition_of

log = logging.getLogger(__name__)
# Recipients read per page, in batches; a short batch at a page's end is re-read with the
# next page rather than sent short.
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
        # Set on SIGTERM: the current batch finishes and is checkpointed, then the job is
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
        cursor, seq = job.cursor, job.batches_sent
        options = SendOptions.model_validate(job.options)
        while True:
            page = job.batch_size * PAGE_BATCHES
            rows = await repository.fetch_audience_page(self.pool, job, cursor, page)
            if not rows:
                await repository.finish(self.pool, job.id, self.owner)
                metrics.JOBS_COMPLETED.inc()
                log.info("send job completed", extra={"job_id": job.id, "batches": seq})
                return
            for batch in plan_batches(rows, job.batch_size, more_may_follow=len(rows) == page):
                lease.check()
                await self._produce(job, options, seq, batch)
                status = await repository.checkpoint(
                    self.pool, job.id, self.owner, self.lease_seconds, batch.last_key,
                    len(batch.recipients),
                )  # fmt: skip
                if status is None:
                    raise LeaseLost(f"send job {job.id}: another scheduler holds the lease")
                seq, cursor = seq + 1, batch.last_key
                if status != "running" or self.stopping.is_set():
                    log.info("send job stopped", extra={"job_id": job.id, "status": status})
                    return
                if job.pause_ms:
                    await asyncio.sleep(job.pause_ms / 1000)
                    # an operator may pause or cancel during the pause: honour it at once
                    status = await repository.status(self.pool, job.id)
                    if status != "running":
                        log.info("send job stopped", extra={"job_id": job.id, "status": status})
                        return

    async def _produce(
        self, job: ClaimedJob, options: SendOptions, seq: int, batch: PlannedBatch
    ) -> None:
        """Produce one batch and wait for Kafka's acknowledgement. A batch Kafka can never
        take (too large, say) fails the job with the error, instead of leaving it to be
        re-claimed first forever; an outage raises, and the job resumes from its checkpoint."""
        event = SendBatch(
            event_id=f"job-{job.id}-batch-{seq}",
            job_id=job.id,
            batch_seq=seq,
            bucket=batch.bucket,
            content_id=job.content_id,
            content_kind=job.content_kind,
            app_keys=job.app_keys,
            options=options,
            launched_at=job.launched_at,
            recipients=list(batch.recipients),
        )
        value = event.model_dump_json().encode()
        try:
            if len(value) > MAX_EVENT_BYTES:
                raise BatchTooLarge(
                    f"batch {seq} is {len(value)} bytes; a Kafka message holds {MAX_EVENT_BYTES}"
                )
            partitions = await self.producer.partitions_for(SENDS.name)
            with metrics.PRODUCE_SECONDS.time():
                await self.producer.send_and_wait(
                    SENDS.name,
                    value,
                    key=str(batch.bucket).encode(),
                    partition=partition_of(batch.bucket, len(partitions)),
                )
        except Exception as exc:
            if dependency_down(exc) is not None:
                raise
            error = f"{type(exc).__name__}: {exc}"
            await repository.fail(self.pool, job.id, self.owner, error)
            log.error("send job failed", extra={"job_id": job.id, "error": error})
            raise JobFailed(error) from exc
        metrics.BATCHES.inc()
        metrics.RECIPIENTS.inc(len(batch.recipients))


class BatchTooLarge(Exception):
    """A planned batch larger than a Kafka message (its envelope grew past the limit)."""


class JobFailed(Exception):
    """The job was marked failed; its run stops."""
