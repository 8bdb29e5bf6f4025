"""Is a failure "a dependency is down" (retry until it is back) or "this input is bad"
(a few tries, then dead-letter)? Decided by which client raised and how, never by a broad
Python type: ``OSError`` from ``datetime.fromtimestamp`` on a hostile attribute is bad
input, ``ConnectionRefusedError`` while asyncpg opens a connection is PostgreSQL down.

``dependency_down(exc)`` names the dependency ("postgres", "redis", "kafka") or returns
None. Every consumer and API uses this one function, so the rule is the same everywhere.
"""

from __future__ import annotations

import asyncio

import asyncpg
import redis.exceptions
from aiokafka import errors as kafka_errors

# asyncpg: the connection broke or could not be made, or the server is shutting down or
# starting up (SQLSTATE classes 08 and 57P0x). Query errors (syntax, constraint, data)
# are the request's own fault.
_POSTGRES = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
)
# asyncpg's client-side errors about a value or the client itself (a Python int beyond
# bigint, an unencodable string) subclass InterfaceError but are the input's fault.
_POSTGRES_NOT_DOWN = (
    asyncpg.exceptions._base.DataError,
    asyncpg.exceptions._base.ClientConfigurationError,
    asyncpg.exceptions._base.UnsupportedClientFeatureError,
)
_REDIS = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    # a Redis Cluster with a master down or failing over (CLUSTERDOWN, TRYAGAIN, a slot
    # no reachable node serves, redirections that never settle)
    redis.exceptions.ClusterError,
    redis.exceptions.TryAgainError,
    redis.exceptions.SlotNotCoveredError,
)
# aiokafka flags the errors a retry can cure (``retriable``); these few are not flagged
# but still mean "the broker is not answering", not "the record is bad".
_KAFKA_UNFLAGGED = (
    kafka_errors.KafkaTimeoutError,
    kafka_errors.RequestTimedOutError,
    kafka_errors.KafkaConnectionError,
    kafka_errors.NodeNotReadyError,
)
# Low-level errors count only when a client's own code raised them (socket refused or
# reset, the pool's connect timed out): found by the modules in the traceback.
_LOW_LEVEL = (ConnectionError, TimeoutError)
_CLIENT_MODULES = {"asyncpg": "postgres", "redis": "redis", "aiokafka": "kafka"}


def dependency_down(exc: BaseException) -> str | None:
    """The dependency whose outage caused ``exc``, or None when ``exc`` is not an outage."""
    for error in _chain(exc):
        if isinstance(error, _POSTGRES_NOT_DOWN):
            continue
        if isinstance(error, _POSTGRES):
            return "postgres"
        if isinstance(error, _REDIS):
            return "redis"
        if isinstance(error, kafka_errors.KafkaError) and (
            error.retriable or isinstance(error, _KAFKA_UNFLAGGED)
        ):
            return "kafka"
        # A time limit (asyncio.timeout) that cancelled a call inside a client: the
        # TimeoutError is raised by asyncio, the cancellation it wraps by the client.
        if isinstance(error, _LOW_LEVEL) or (
            isinstance(error, asyncio.CancelledError) and isinstance(exc, TimeoutError)
        ):
            origin = _raised_by_client(error)
            if origin is not None:
                return origin
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes (a client may wrap a socket error in its own)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _raised_by_client(exc: BaseException) -> str | None:
    tb = exc.__traceback__
    origin = None
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        top = module.split(".", 1)[0]
        if top in _CLIENT_MODULES:
            origin = _CLIENT_MODULES[top]
        tb = tb.tb_next
    return origin
