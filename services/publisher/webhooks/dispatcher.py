"""Sends due outbox rows, batched per endpoint (docs/webhooks.md, "How it works").

Every turn: endpoints with due rows are found; each one not already in flight gets a task
that claims up to ``webhook_batch_size`` due rows (a lease, so another publisher process
skips them), POSTs them in one signed request and marks them done, or schedules a retry
with exponential backoff and jitter, or dead-letters them past the attempts or age
limit. One endpoint at a time per endpoint, ``webhook_concurrency`` endpoints at once:
a slow or dead endpoint only delays itself. Done rows are purged after the retention.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import asyncpg
import httpx

from services.publisher.webhooks import metrics
from services.publisher.webhooks.signing import SIGNATURE_HEADER, resolves_private, sign
from shared.settings import PublisherSettings

log = logging.getLogger(__name__)
LEASE_SECONDS = 120
PURGE_EVERY_SECONDS = 60


class Dispatcher:
    def __init__(self, pool: asyncpg.Pool, settings: PublisherSettings) -> None:
        self.pool, self.settings = pool, settings
        self.in_flight: dict[int, asyncio.Task[None]] = {}
        self.client = httpx.AsyncClient(
            timeout=settings.webhook_timeout_seconds, follow_redirects=False
        )
        self.last_purge = 0.0

    async def run(self, interval: float = 0.5) -> None:
        try:
            while True:
                try:
                    await self.turn()
                except Exception:
                    log.exception("webhook dispatcher turn failed")
                await asyncio.sleep(interval)
        finally:
            for task in self.in_flight.values():
                task.cancel()
            await self.client.aclose()

    async def turn(self) -> None:
        self.in_flight = {e: t for e, t in self.in_flight.items() if not t.done()}
        room = self.settings.webhook_concurrency - len(self.in_flight)
        if room > 0:
            for row in await self.pool.fetch(
                """SELECT id AS endpoint_id FROM webhook_endpoints e
                    WHERE NOT id = ANY($1::bigint[]) AND EXISTS (
                          SELECT 1 FROM webhook_outbox o WHERE o.endpoint_id = e.id
                             AND o.status = 'pending' AND o.next_attempt_at <= now())
                    ORDER BY random() LIMIT $2""",
                list(self.in_flight), room,
            ):  # fmt: skip
                endpoint = row["endpoint_id"]
                self.in_flight[endpoint] = asyncio.create_task(self.send_due(endpoint))
        metrics.IN_FLIGHT.set(len(self.in_flight))
        if time.monotonic() - self.last_purge > PURGE_EVERY_SECONDS:
            self.last_purge = time.monotonic()
            await self.pool.execute(
                """DELETE FROM webhook_outbox WHERE status = 'done'
                    AND updated_at < now() - make_interval(secs => $1)""",
                self.settings.webhook_retention_seconds,
            )

    async def send_due(self, endpoint_id: int) -> None:
        """Batches of this endpoint's due rows until none is due or a request fails."""
        try:
            while await self._send_batch(endpoint_id):
                pass
        except Exception:
            log.exception("webhook batch failed", extra={"endpoint_id": endpoint_id})

    async def _send_batch(self, endpoint_id: int) -> bool:
        endpoint = await self.pool.fetchrow(
            "SELECT url, secret, max_attempts FROM webhook_endpoints WHERE id = $1", endpoint_id
        )
        rows = await self._claim(endpoint_id) if endpoint else []
        if not rows or endpoint is None:
            return False
        error = await self.post(endpoint["url"], endpoint["secret"], [r["event"] for r in rows])
        ids = [r["id"] for r in rows]
        if error is None:
            await self.pool.execute(
                """UPDATE webhook_outbox SET status = 'done', attempts = attempts + 1,
                          last_error = NULL, updated_at = now() WHERE id = ANY($1::bigint[])""",
                ids,
            )
            metrics.EVENTS.labels("delivered").inc(len(ids))
            return len(rows) == self.settings.webhook_batch_size
        await self._failed(ids, error, endpoint["max_attempts"], rows[0]["attempts"])
        return False

    async def _claim(self, endpoint_id: int) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            """UPDATE webhook_outbox SET next_attempt_at = now() + make_interval(secs => $3)
                WHERE id IN (SELECT id FROM webhook_outbox
                              WHERE endpoint_id = $1 AND status = 'pending'
                                AND next_attempt_at <= now()
                              ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
            RETURNING id, event::text AS event, attempts""",
            endpoint_id, self.settings.webhook_batch_size, LEASE_SECONDS,
        )  # fmt: skip

    async def _failed(
        self, ids: list[int], error: str, max_attempts: int | None, attempts: int
    ) -> None:
        settings = self.settings
        limit = max_attempts or settings.webhook_max_attempts
        delay = min(
            settings.webhook_backoff_max_seconds,
            settings.webhook_backoff_base_seconds * 2 ** min(attempts, 30),
        ) * random.uniform(0.5, 1.0)  # jitter
        dead = await self.pool.fetchval(
            """WITH t AS (
                 UPDATE webhook_outbox SET attempts = attempts + 1, last_error = $2,
                        updated_at = now(),
                        next_attempt_at = now() + make_interval(secs => $3),
                        status = CASE WHEN attempts + 1 >= $4
                                        OR created_at < now() - make_interval(secs => $5)
                                      THEN 'dead' ELSE 'pending' END
                  WHERE id = ANY($1::bigint[]) RETURNING status)
               SELECT count(*) FILTER (WHERE status = 'dead') FROM t""",
            ids, error[:500], delay, limit, settings.webhook_max_age_seconds,
        )  # fmt: skip
        metrics.EVENTS.labels("retried").inc(len(ids) - dead)
        metrics.EVENTS.labels("dead_lettered").inc(dead)

    async def post(self, url: str, secret: str, events: list[str]) -> str | None:
        """POST the events in one signed request; None on a 2xx, else what went wrong."""
        body = ('{"events":[' + ",".join(events) + "]}").encode()
        if not self.settings.webhook_allow_private_urls and await resolves_private(url):
            metrics.REQUESTS.labels("refused").inc()
            return "refused: the host resolves to a private or loopback address"
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body)}
        started = time.perf_counter()
        try:
            response = await self.client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            metrics.REQUESTS.labels("error").inc()
            return f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
        finally:
            metrics.SECONDS.observe(time.perf_counter() - started)
        if 200 <= response.status_code < 300:
            metrics.REQUESTS.labels("2xx").inc()
            return None
        metrics.REQUESTS.labels(f"{response.status_code // 100}xx").inc()
        return f"HTTP {response.status_code}"


def ping_body(app_key: str) -> dict[str, Any]:
    return {"id": f"ping-{time.time_ns()}", "type": "ping", "appKey": app_key, "data": {}}
