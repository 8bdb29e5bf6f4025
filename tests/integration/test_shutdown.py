"""Each service stops cleanly (exit code 0, promptly) on SIGTERM, as `make down` and
container orchestrators expect. Each runs here as an extra process on spare ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import REPO

SERVICES = {
    "publisher": ("PIGEONHOLE_PORT", 18080),
    "sync": ("PIGEONHOLE_PORT", 18081),
    "scheduler": ("PIGEONHOLE_METRICS_PORT", 19101),
    "delivery": ("PIGEONHOLE_WEB_PORT", 19102),
}


def _wait_ready(port: int, process: subprocess.Popen[bytes], within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited early with {process.returncode}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"not ready on {port} within {within}s")


@pytest.mark.parametrize("service", list(SERVICES))
def test_service_exits_cleanly_on_sigterm(service: str, tmp_path: object) -> None:
    variable, port = SERVICES[service]
    env = {**os.environ, variable: str(port), "PIGEONHOLE_DATA_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", f"services.{service}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_ready(port, process, within=60)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
