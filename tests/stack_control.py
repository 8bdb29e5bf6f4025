"""Control of the local stack's service processes, for tests and benchmarks that must
stop one of them (to run their own, or to kill it) and bring it back afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("PIGEONHOLE_STATE_DIR", REPO / ".stack"))
PORTS = {"publisher": 8080, "sync": 8081, "scheduler": 9101, "delivery": 9102}


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def runs_service(pid: int, name: str) -> bool:
    try:
        return f"services.{name}".encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def listening_pid(port: int) -> int | None:
    """The process listening on TCP ``port`` (found through /proc), if any."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        with contextlib.suppress(OSError):
            for fd in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return int(fd_dir.parent.name)
    return None


def service_pid(name: str) -> int:
    return int((STATE_DIR / "run" / f"{name}.pid").read_text().strip())


def stop_stack_service(name: str, sig: signal.Signals = signal.SIGTERM, within: float = 30) -> None:
    """Signal the stack's ``name`` service (the pid in its pid file, and whatever process of
    that service serves its port) and wait until it has exited."""
    candidates = {listening_pid(PORTS[name])}
    with contextlib.suppress(OSError, ValueError):
        candidates.add(service_pid(name))
    for pid in candidates:
        if pid is None or not alive(pid) or not runs_service(pid, name):
            continue
        os.kill(pid, sig)
        deadline = time.monotonic() + within
        while alive(pid):
            if time.monotonic() > deadline:
                raise AssertionError(f"the stack's {name} (pid {pid}) did not stop in {within} s")
            time.sleep(0.1)


def start_stack_services() -> int:
    """Start whatever of the four services is not running (idempotent) and wait until all
    are ready; return the script's exit code."""
    return subprocess.run(
        ["bash", "deploy/local/services.sh", "up"], cwd=REPO, check=False, timeout=240,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    ).returncode  # fmt: skip
