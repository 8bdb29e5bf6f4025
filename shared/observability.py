"""Structured JSON logs and the health/metrics endpoints every service exposes."""

from __future__ import annotations

import logging
import sys
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


def configure_logging(service: str, level: str = "INFO") -> None:
    """One JSON object per line on stdout, tagged with the service name."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(json_formatter(service))
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
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"handlers": ["stdout"], "level": level.upper()},
    }


ReadinessCheck = Callable[[], Awaitable[None]]


async def run_checks(checks: dict[str, ReadinessCheck]) -> tuple[bool, dict[str, str]]:
    """Run each dependency check; a check raises to say its dependency is not usable."""
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await check()
            results[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; the reason is reported
            results[name] = f"error: {type(exc).__name__}: {exc}"[:300]
    return all(v == "ok" for v in results.values()), results
