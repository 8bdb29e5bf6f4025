"""Sync as N processes sharing one port (``--workers``, PIGEONHOLE_SYNC_WORKERS): every
process answers, /metrics sums the counts of all of them (prometheus-client multiprocess
mode), SIGTERM stops them all with exit code 0, and a killed parent takes its workers
with it. Runs as an extra process on a spare port against the real stack."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import REPO
from tests.integration.test_shutdown import _wait_ready

PORT = 18083


def _get(path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}{path}", timeout=5) as answer:
        body: bytes = answer.read()
        return body


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _start(tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PIGEONHOLE_PORT": str(PORT),
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}  # fmt: skip
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "counter_1.db").write_bytes(b"left by a dead process")
    return subprocess.Popen(
        [sys.executable, "-m", "services.sync", "--workers", "2"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def test_two_workers_share_the_port_sum_their_metrics_and_stop_on_sigterm(
    tmp_path: Path,
) -> None:
    process = _start(tmp_path)
    try:
        _wait_ready(PORT, process, within=60)
        assert len(_children(process.pid)) == 2
        for _ in range(40):  # new connections each time: the kernel spreads them
            _get("/healthz")
        metrics = _get("/metrics").decode()
        count = re.search(r'pigeonhole_http_requests_total\{[^}]*route="/healthz"[^}]*\} (\S+)',
                          metrics)  # fmt: skip
        assert count is not None and float(count.group(1)) == 40
        assert not (tmp_path / "metrics" / "counter_1.db").exists()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_workers_stop_when_their_parent_is_killed(tmp_path: Path) -> None:
    process = _start(tmp_path)
    try:
        _wait_ready(PORT, process, within=60)
        workers = _children(process.pid)
        process.kill()
        process.wait()
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in workers):
            assert time.monotonic() < deadline, "workers outlived their parent"
            time.sleep(0.2)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
