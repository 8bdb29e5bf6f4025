"""Sync metrics (prometheus-client); labels are bounded."""

from prometheus_client import Counter, Gauge

PHONE_HOMES = Counter(
    "pigeonhole_sync_phone_homes_total",
    "Phone homes answered, by outcome (changed or nothing_new) and platform",
    ["outcome", "platform"],
)
EVENTS = Counter(
    "pigeonhole_sync_events_total",
    "Device engagement events, by type and result (accepted or duplicate)",
    ["type", "result"],
)
OPEN_STREAMS = Gauge(
    "pigeonhole_sync_open_streams",
    "Live streams (GET /v1/stream) open, summed over the sync processes",
    multiprocess_mode="livesum",
)
