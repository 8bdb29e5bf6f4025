"""Settings read from the environment (prefix ``PIGEONHOLE_``), one class per service.

Defaults match the local stack that ``make up`` starts, so every command works with no
flags on a developer machine; production overrides them through the environment.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.topics import SENDS


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PIGEONHOLE_", extra="ignore")

    database_url: str = "postgresql://pigeonhole:pigeonhole@127.0.0.1:5432/pigeonhole"
    redis_url: str = "redis://127.0.0.1:6379/0"
    kafka_bootstrap: str = "127.0.0.1:9092"
    log_level: str = "INFO"
    db_pool_min: int = 1
    db_pool_max: int = 10


class HttpServerSettings(CommonSettings):
    """Limits of an HTTP service (docs/architecture.md, "Failure modes: bad requests")."""

    host: str = "127.0.0.1"
    port: int = 8080
    # A client must send its request line and headers within this many seconds of
    # connecting (or of its first byte on a kept-alive connection), at most this many bytes
    http_header_timeout_seconds: float = 10
    http_max_header_bytes: int = 64 * 1024
    # ... and then never pause longer than this between two pieces of its body
    http_body_timeout_seconds: float = 15
    # idle kept-alive connections are closed after this
    http_keepalive_seconds: float = 5
    # more open connections than this are answered 503 straight away (per process)
    http_max_connections: int = 1000
    http_backlog: int = 2048
    # JSON request bodies; uploads and the NDJSON import stream and have their own limits
    max_body_bytes: int = 1024 * 1024


class PublisherSettings(HttpServerSettings):
    port: int = 8080
    # POST /contacts/batch: lines per import (each line at most 256 KiB)
    max_import_lines: int = 1_000_000
    # Where uploaded media is served from; the publisher builds absolute media URLs with it.
    public_url: str = "http://127.0.0.1:8080"
    # Management API requests a minute per API token unless the token has its own limit
    # (docs/api.md, "Rate limits").
    token_requests_per_minute: int = Field(default=60_000, ge=1)
    # Outbound webhooks (docs/webhooks.md). Loopback/private/link-local targets are refused
    # unless allowed (the local stack allows them: deploy/local/services.sh).
    webhook_allow_private_urls: bool = False
    webhook_max_attempts: int = Field(default=20, ge=1, le=100)  # then dead-lettered
    webhook_max_age_seconds: float = Field(default=24 * 3600, gt=0)  # ... or this old
    webhook_backoff_base_seconds: float = Field(default=2, gt=0)
    webhook_backoff_max_seconds: float = Field(default=3600, gt=0)
    webhook_timeout_seconds: float = Field(default=10, gt=0)
    webhook_batch_size: int = Field(default=100, ge=1, le=1000)  # events per POST
    webhook_concurrency: int = Field(default=32, ge=1, le=1000)  # endpoints sent to at once
    webhook_retention_seconds: float = Field(default=24 * 3600, ge=0)  # done rows kept


class SyncSettings(HttpServerSettings):
    port: int = 8081
    # Device API requests a minute per device (app + contact) unless the app has its own
    # limit (docs/api.md, "Rate limits"); a device phones home about once a minute.
    device_requests_per_minute: int = Field(default=1200, ge=1)
    max_body_bytes: int = 64 * 1024  # a batch of 100 events is about 20 KiB
    # Demo mode lets the sync service mint device tokens itself (never in production).
    demo_mode: bool = False
    # Processes serving the one port (PIGEONHOLE_SYNC_WORKERS); more than one keeps the
    # metrics in prometheus-client's multiprocess mode (services/sync/__main__.py).
    workers: int = Field(default=1, ge=1, le=64, validation_alias="pigeonhole_sync_workers")
    # Open connections per process: live streams (GET /v1/stream) hold one each, so sync
    # allows many more than the other services; the process raises its open-files limit
    # to fit (services/sync/main.py). Streams beyond ``max_streams`` are answered 503.
    http_max_connections: int = 20_000
    max_streams: int = 15_000


class SchedulerSettings(CommonSettings):
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9101
    poll_interval_seconds: float = 0.5
    # A running job's lease, renewed by a heartbeat every third of it: a replacement
    # resumes a dead scheduler's job within about this many seconds.
    lease_seconds: int = 9
    # expired inbox entries are deleted this long after expiry, in chunks, every interval
    purge_grace_seconds: int = 3600
    purge_interval_seconds: float = 60
    purge_chunk: int = 5000
    # delta sync's tombstones of purged App Inbox entries are kept this long: a device whose
    # cursor is older refetches its inbox (410)
    tombstones_kept_seconds: int = Field(default=30 * 86_400, ge=3600)


class DeliverySettings(CommonSettings):
    web_host: str = "127.0.0.1"
    web_port: int = 9102
    consumer_group: str = "pigeonhole-delivery"
    # App Inbox entries kept per contact; filing one more evicts the oldest
    inbox_cap: int = 200
    # faust wants a data directory even with the in-memory store
    data_dir: str = ".stack/delivery"
    # SendBatch events handled at once by one worker (across its partitions): while one
    # batch waits on PostgreSQL, Redis or Kafka, another is personalized. Each holds at
    # most one PostgreSQL connection at a time; keep it at or below db_pool_max.
    batches_in_flight: int = Field(default=4, ge=1, le=64)
    # Delivery processes `make up` runs in the one consumer group (PIGEONHOLE_DELIVERY_WORKERS;
    # deploy/local/services.sh): the Nth serves web_port + N - 1. More than the partitions
    # of pigeonhole.sends would leave the extra ones without any partition.
    workers: int = Field(
        default=1, ge=1, le=SENDS.partitions, validation_alias="pigeonhole_delivery_workers"
    )
