"""Delivery metrics (prometheus-client); labels are bounded (reasons are an enum)."""

from prometheus_client import Counter, Gauge, Histogram

OUTCOMES = Counter(
    "pigeonhole_delivery_recipients_total",
    "Recipients decided, by outcome and skip reason",
    ["outcome", "reason"],
)
BATCH_SECONDS = Histogram(
    "pigeonhole_delivery_batch_seconds",
    "Time to decide and file one SendBatch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DEAD_LETTERS = Counter("pigeonhole_delivery_dead_letters_total", "Events sent to pigeonhole.dlq")
RETRIES = Counter("pigeonhole_delivery_retries_total", "Batch attempts retried after an error")
CONSUMER_LAG = Gauge(
    "pigeonhole_delivery_consumer_lag",
    "SendBatch events waiting behind the one just handled, per partition of pigeonhole.sends",
    ["partition"],
)
DEPENDENCY_DOWN = Gauge(
    "pigeonhole_delivery_dependency_down",
    "1 while the worker waits for a dependency to answer (its batch is retried meanwhile)",
    ["dependency"],
)
