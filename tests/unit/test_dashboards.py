"""The alert rules and the Grafana dashboard only name metrics the services export."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

REPO = Path(__file__).resolve().parents[2]
METRIC_MODULES = ["shared.ops", "services.delivery.metrics", "services.scheduler.metrics",
                  "services.sync.metrics"]  # fmt: skip
SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")


def exported() -> set[str]:
    for module in METRIC_MODULES:
        importlib.import_module(module)
    names = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES)
    return names


def named_in(text: str) -> set[str]:
    return set(re.findall(r"\bpigeonhole_[a-z_]+", text))


def test_alert_rules_are_valid_and_name_exported_metrics() -> None:
    rules = yaml.safe_load((REPO / "deploy/prometheus/alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert len(exprs) >= 5
    for rule in (r for g in rules["groups"] for r in g["rules"]):
        assert rule["alert"].startswith("Pigeonhole") and rule["annotations"]["summary"]
    missing = named_in(" ".join(exprs)) - exported()
    assert not missing, f"alerts name metrics no service exports: {missing}"


def test_dashboard_is_current_and_names_exported_metrics() -> None:
    spec = importlib.util.spec_from_file_location(
        "build_dashboard", REPO / "deploy/grafana/build_dashboard.py"
    )
    assert spec is not None and spec.loader is not None
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    built = builder.dashboard()
    stored = json.loads((REPO / "deploy/grafana/dashboards/pigeonhole.json").read_text())
    assert stored == built, "run: python deploy/grafana/build_dashboard.py"
    exprs = " ".join(t["expr"] for panel in stored["panels"] for t in panel["targets"])
    missing = named_in(exprs) - exported()
    assert not missing, f"the dashboard names metrics no service exports: {missing}"
