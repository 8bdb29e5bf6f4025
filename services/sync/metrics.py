"""Sync metrics (prometheus-client); labels are bounded."""

from prometheus_client import Counter

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
