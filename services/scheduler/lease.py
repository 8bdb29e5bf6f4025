"""The lease on a running send job, renewed by a heartbeat.

A scheduler holds a job while ``send_jobs.lease_until`` is in the future. The heartbeat
renews it every ``seconds / 3``, so a short lease (default 9 s) costs nothing while the
holder lives, and a replacement resumes a dead holder's job within about ``seconds`` of
its death — whatever the pause between batches and however long a batch takes.

Never two at once: the holder trusts its lease only until ``seconds`` after the start
of its last renewal that PostgreSQL confirmed, minus a safety margin; past that
(PostgreSQL unreachable, or another scheduler took the job) it produces nothing more.
A batch whose produce had already started may still land after that instant; delivery
files at most one inbox entry per (send job, contact), so such a batch is a duplicate
on the wire, never in an inbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from types import TracebackType

import asyncpg

from services.scheduler import metrics
from shared.failures import dependency_down

log = logging.getLogger(__name__)

_RENEW = """
UPDATE send_jobs SET lease_until = now() + make_interval(secs => $3)
 WHERE id = $1 AND lease_owner = $2
RETURNING 1
"""


class LeaseLost(Exception):
    """The job's lease lapsed or went to another scheduler: stop producing at once."""


class Lease:
    def __init__(
        self, pool: asyncpg.Pool, job_id: int, owner: str, seconds: float, margin: float = 1.0
    ) -> None:
        self.pool, self.job_id, self.owner, self.seconds = pool, job_id, owner, seconds
        self.margin = min(margin, seconds / 3)
        # claimed just now: the claim itself was the first renewal
        self._valid_until = time.monotonic() + seconds - self.margin
        self._lost = False
        self._task: asyncio.Task[None] | None = None

    def check(self) -> None:
        """Raise LeaseLost unless this scheduler still surely holds the job."""
        if self._lost:
            raise LeaseLost(f"send job {self.job_id}: another scheduler holds the lease")
        if time.monotonic() >= self._valid_until:
            raise LeaseLost(f"send job {self.job_id}: the lease could not be renewed in time")

    async def renew(self) -> None:
        started = time.monotonic()
        held = await self.pool.fetchval(_RENEW, self.job_id, self.owner, float(self.seconds))
        if held is None:
            self._lost = True
            return
        self._valid_until = started + self.seconds - self.margin

    async def _heartbeat(self) -> None:
        while not self._lost:
            await asyncio.sleep(self.seconds / 3)
            try:
                await self.renew()
            except Exception as exc:  # the runner stops on check(); keep trying meanwhile
                if dependency_down(exc) is None:
                    log.exception("lease renewal failed", extra={"job_id": self.job_id})
                metrics.LEASE_RENEWAL_FAILURES.inc()

    async def __aenter__(self) -> Lease:
        self._task = asyncio.create_task(self._heartbeat(), name=f"lease-{self.job_id}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
