"""pigeonhole_webhook_* metrics (labels bounded: an outcome or a status class, no URL)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter(
    "pigeonhole_webhook_events",
    "Outbox events by outcome of a send attempt: delivered, retried, dead_lettered",
    ["outcome"],
)
ENQUEUED = Counter("pigeonhole_webhook_enqueued_events", "Outbox rows written from Kafka")
REQUESTS = Counter(
    "pigeonhole_webhook_requests",
    "Webhook POSTs by result: 2xx, 3xx, 4xx, 5xx, error (no answer), refused (private host)",
    ["result"],
)
SECONDS = Histogram("pigeonhole_webhook_request_seconds", "Duration of one webhook POST")
IN_FLIGHT = Gauge("pigeonhole_webhook_endpoints_in_flight", "Endpoints being sent to now")
