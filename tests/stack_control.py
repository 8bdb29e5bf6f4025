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
    """The pid in ``name``'s pid file: a service ("delivery": its first worker) or one
    process of it ("delivery-2")."""
    return int((STATE_DIR / "run" / f"{name}.pid").read_text().strip())


def service_processes(name: str) -> dict[str, int]:
    """The stack's processes of service ``name`` that have a pid file and are alive, by
    process name: {"delivery": pid, "delivery-2": pid, ...} (services.sh names them)."""
    found: dict[str, int] = {}
    files = [STATE_DIR / "run" / f"{name}.pid", *(STATE_DIR / "run").glob(f"{name}-*.pid")]
    for path in files:
        with contextlib.suppress(OSError, ValueError):
            pid = int(path.read_text().strip())
            if alive(pid) and runs_service(pid, name):
                found[path.stem] = pid
    return dict(sorted(found.items(), key=lambda item: process_index(item[0])))


def process_index(process: str) -> int:
    """delivery -> 1, delivery-2 -> 2, ..."""
    return int(process.rsplit("-", 1)[1]) if "-" in process else 1


def delivery_port(process: str) -> int:
    """The web port services.sh gives the delivery process ``process`` (9102, 9103, ...)."""
    return PORTS["delivery"] + process_index(process) - 1


def stop_stack_service(name: str, sig: signal.Signals = signal.SIGTERM, within: float = 30) -> None:
    """Signal every process of the stack's ``name`` service (the pids in its pid files, and
    whatever process of that service serves its port) and wait until they have exited."""
    candidates: set[int | None] = {listening_pid(PORTS[name])}
    candidates.update(service_processes(name).values())
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


def start_stack_services(*names: str, env: dict[str, str] | None = None) -> int:
    """Start whatever of the four services (or of ``names``) is not running (idempotent)
    and wait until all are ready; return the script's exit code. ``env`` adds settings,
    e.g. {"PIGEONHOLE_DELIVERY_WORKERS": "3"} (fewer than run stops the extra ones)."""
    return subprocess.run(
        ["bash", "deploy/local/services.sh", "up", *names], cwd=REPO, check=False, timeout=240,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})},
    ).returncode  # fmt: skip
