"""Writes deploy/grafana/dashboards/pigeonhole.json (run after changing the panels)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _quantile(q: float, metric: str, where: str = "") -> str:
    return f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{where}[5m])))"


SYNC_ROUTE = '{service="sync", route="/v1/sync"}'

PANELS: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("Phone homes per second", "reqps", [
        ('sum by (outcome) (rate(pigeonhole_sync_phone_homes_total[1m]))', "{{outcome}}"),
    ]),
    # "or vector(0)": until a device first hears "nothing new" that series does not exist,
    # and the ratio is then 0, not missing
    ('"Nothing new" ratio', "percentunit", [
        ('(sum(rate(pigeonhole_sync_phone_homes_total{outcome="nothing_new"}[5m])) or vector(0))'
         ' / sum(rate(pigeonhole_sync_phone_homes_total[5m]))', "nothing new"),
    ]),
    ("Phone home latency", "s", [
        (_quantile(0.5, "pigeonhole_http_request_seconds", SYNC_ROUTE), "p50"),
        (_quantile(0.99, "pigeonhole_http_request_seconds", SYNC_ROUTE), "p99"),
    ]),
    ("Device events per second", "ops", [
        ("sum by (type, result) (rate(pigeonhole_sync_events_total[1m]))", "{{type}} {{result}}"),
    ]),
    ("Recipients decided per second", "ops", [
        ("sum by (outcome, reason) (rate(pigeonhole_delivery_recipients_total[1m]))",
         "{{outcome}} {{reason}}"),
    ]),
    ("Delivery batch latency", "s", [
        (_quantile(0.5, "pigeonhole_delivery_batch_seconds"), "p50"),
        (_quantile(0.99, "pigeonhole_delivery_batch_seconds"), "p99"),
    ]),
    ("Delivery consumer lag (batches)", "short", [
        ("sum(pigeonhole_delivery_consumer_lag)", "lag"),
    ]),
    ("Retries and dead letters", "short", [
        ("increase(pigeonhole_delivery_retries_total[5m])", "retries"),
        ("increase(pigeonhole_delivery_dead_letters_total[5m])", "dead letters"),
    ]),
    ("Scheduler throughput", "ops", [
        ("rate(pigeonhole_scheduler_recipients_total[1m])", "recipients/s"),
        ("rate(pigeonhole_scheduler_batches_total[1m])", "batches/s"),
    ]),
    ("Scheduler produce latency", "s", [
        (_quantile(0.99, "pigeonhole_scheduler_produce_seconds"), "p99"),
    ]),
    ("HTTP requests by service and status", "reqps", [
        ("sum by (service, status) (rate(pigeonhole_http_requests_total[1m]))",
         "{{service}} {{status}}"),
    ]),
    ("Expired entries purged", "short", [
        ("increase(pigeonhole_scheduler_purged_entries_total[1h])", "purged / h"),
    ]),
]  # fmt: skip


def dashboard() -> dict[str, Any]:
    panels = []
    for i, (title, unit, targets) in enumerate(PANELS):
        panels.append({
            "id": i + 1, "type": "timeseries", "title": title,
            "gridPos": {"x": (i % 2) * 12, "y": (i // 2) * 8, "w": 12, "h": 8},
            "datasource": {"type": "prometheus", "uid": "prometheus"},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [
                {"refId": chr(65 + j), "expr": expr, "legendFormat": legend,
                 "datasource": {"type": "prometheus", "uid": "prometheus"}}
                for j, (expr, legend) in enumerate(targets)
            ],
        })  # fmt: skip
    return {
        "uid": "pigeonhole", "title": "Pigeonhole", "schemaVersion": 39, "version": 1,
        "time": {"from": "now-1h", "to": "now"}, "refresh": "30s", "tags": ["pigeonhole"],
        "panels": panels,
    }  # fmt: skip


if __name__ == "__main__":
    out = Path(__file__).parent / "dashboards" / "pigeonhole.json"
    out.write_text(json.dumps(dashboard(), indent=2) + "\n")
    print(f"wrote {out}")
