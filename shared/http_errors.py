"""The HTTP answer to an exception no handler expected, the same in every service.

- A dependency is down (``shared.failures.dependency_down`` names it): ``503`` with
  ``Retry-After``, logged at most once per dependency per ``LOG_INTERVAL`` with a count,
  so an outage does not flood the log with one line per request.
- PostgreSQL refused a value (``DataError``: out of range, invalid text, untranslatable
  character ...): ``400`` naming the problem, logged as a bug — the input check that
  should have caught it is missing.
- Anything else: ``500``, logged with its traceback. That is a bug to fix, not to hide.

``EXPECTED`` lists the exception types to register a handler for. They are handled inside
the framework's exception middleware, which answers without re-raising; a handler for
``Exception`` itself would run in the outermost middleware, which re-raises after
answering and so logs a traceback for every request of an outage.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import asyncpg
import redis.exceptions
from aiokafka import errors as kafka_errors

from shared.failures import dependency_down

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
LOG_INTERVAL = 10.0
NAMES = {"postgres": "PostgreSQL", "redis": "Redis", "kafka": "Kafka"}
# OSError covers ConnectionRefusedError and TimeoutError (asyncio's too, since 3.11).
EXPECTED: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    redis.exceptions.RedisError,
    kafka_errors.KafkaError,
)


@dataclass(frozen=True)
class Answer:
    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)


class _OutageLog:
    """One warning per dependency per interval, saying how many requests were refused."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._refused: dict[str, int] = {}

    def refused(self, dependency: str, exc: BaseException) -> None:
        self._refused[dependency] = self._refused.get(dependency, 0) + 1
        now = time.monotonic()
        if now - self._last.get(dependency, -LOG_INTERVAL) >= LOG_INTERVAL:
            log.warning(
                "%s is down: %d request(s) answered 503 (%s: %s)",
                NAMES[dependency], self._refused[dependency], type(exc).__name__, exc,
                extra={"dependency": dependency},
            )  # fmt: skip
            self._last[dependency] = now
            self._refused[dependency] = 0


_OUTAGES = _OutageLog()


def answer_for(exc: BaseException, route: str = "") -> Answer:
    """The status, message and headers that answer ``exc``; logs it as described above."""
    dependency = dependency_down(exc)
    if dependency is not None:
        _OUTAGES.refused(dependency, exc)
        return Answer(
            503,
            f"{NAMES[dependency]} is unavailable; retry in a few seconds",
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, asyncpg.DataError):
        log.error("bug: input reached the database unchecked on %s", route, exc_info=exc)
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Answer(400, f"a value of this request cannot be stored: {problem}")
    log.error("unexpected error on %s", route, exc_info=exc)
    return Answer(500, "internal error; it has been logged")
