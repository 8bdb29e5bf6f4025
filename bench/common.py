"""Shared pieces of the benchmarks: results, medians, the stack's API, processes."""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
PUBLISHER = "http://127.0.0.1:8080"
SYNC = "http://127.0.0.1:8081"


def machine() -> dict[str, Any]:
    import os

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(scenario: str, figures: dict[str, Any], details: dict[str, Any] | None = None) -> None:
    """Print the one-line result and write the JSON under bench/results/."""
    line = " ".join(f"{k}={_fmt(v)}" for k, v in figures.items())
    print(f"BENCH {scenario} {line}", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    document = {"scenario": scenario, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "machine": machine(), "figures": figures, "details": details or {}}  # fmt: skip
    (RESULTS / f"{scenario}.json").write_text(json.dumps(document, indent=2, default=str))


def _fmt(value: Any) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def admin_token() -> str:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "pigeonhole"), "tokens", "create", "--name", "bench"],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def service_pid(name: str) -> int:
    return int((REPO / ".stack" / "run" / f"{name}.pid").read_text())
