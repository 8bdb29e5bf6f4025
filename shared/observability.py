"""Structured JSON logs and the health/metrics endpoints every service exposes."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pythonjsonlogger.json import JsonFormatter

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def json_formatter(service: str) -> JsonFormatter:
    return JsonFormatter(
        LOG_FORMAT,
        rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
        static_fields={"service": service},
    )


# The clients' own loggers, by the dependency they talk to. While a dependency is down
# they log every reconnect try (thousands of lines a minute for Kafka).
DEPENDENCY_LOGGERS = {
    "aiokafka": "kafka", "kafka": "kafka", "faust": "kafka", "mode": "kafka",
    "asyncpg": "postgres", "redis": "redis",
}  # fmt: skip
LOG_LIMIT_INTERVAL_SECONDS = 10.0


class DependencyLogLimiter(logging.Filter):
    """At most one line per dependency and message per interval for connection trouble.

    Applies to warnings and errors of the clients' loggers and to any record logged with
    ``extra={"dependency": name}``. The first line of an interval passes with
    ``suppressed``: how many like it were dropped since the last one that passed.
    """

    def __init__(self, interval: float = LOG_LIMIT_INTERVAL_SECONDS) -> None:
        super().__init__()
        self.interval = interval
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        dependency = getattr(record, "dependency", None) or (
            DEPENDENCY_LOGGERS.get(record.name.split(".", 1)[0])
            if record.levelno >= logging.WARNING
            else None
        )
        if dependency is None:
            return True
        key = (str(dependency), str(record.msg)[:200])
        now = time.monotonic()
        with self._lock:
            last, dropped = self._seen.get(key, (0.0, 0))
            if now - last < self.interval:
                self._seen[key] = (last, dropped + 1)
                return False
            if len(self._seen) > 1000:
                self._seen.clear()
            self._seen[key] = (now, 0)
        record.dependency = dependency
        record.suppressed = dropped
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    """One JSON object per line on stdout, tagged with the service name."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(json_formatter(service))
    handler.addFilter(DependencyLogLimiter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))


def logging_dict_config(service: str, level: str = "INFO") -> dict[str, Any]:
    """The same JSON logging as a dictConfig (for faust, which configures logging itself)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": LOG_FORMAT,
                "rename_fields": {"asctime": "ts", "levelname": "level", "name": "logger"},
                "static_fields": {"service": service},
            }
        },
        "filters": {"dependency_limit": {"()": "shared.observability.DependencyLogLimiter"}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["dependency_limit"],
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"handlers": ["stdout"], "level": level.upper()},
    }


ReadinessCheck = Callable[[], Awaitable[None]]


READINESS_CHECK_TIMEOUT_SECONDS = 2.0


async def run_checks(checks: dict[str, ReadinessCheck]) -> tuple[bool, dict[str, str]]:
    """Run each dependency check; a check raises to say its dependency is not usable, and
    one that does not answer within two seconds counts as not usable (a probe must not
    hang on a stalled dependency)."""
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(), timeout=READINESS_CHECK_TIMEOUT_SECONDS)
            results[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; the reason is reported
            results[name] = f"error: {type(exc).__name__}: {exc}"[:300]
    return all(v == "ok" for v in results.values()), results
