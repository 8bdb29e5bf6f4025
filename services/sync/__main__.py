"""``python -m services.sync [--workers N]``: the device API in N processes sharing one
port (default ``PIGEONHOLE_SYNC_WORKERS``, else 1).

With more than one, each process keeps its metrics in ``PROMETHEUS_MULTIPROC_DIR`` (a
fresh temporary directory when unset; emptied at start so no dead process's counts are
added in) and ``/metrics`` sums them. prometheus-client picks its storage when it is
first imported, so this is settled before anything else is imported.
"""

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from shared.settings import SyncSettings  # pydantic only: prometheus-client not imported yet

parser = argparse.ArgumentParser(prog="python -m services.sync", description=__doc__)
parser.add_argument("--workers", type=int, default=SyncSettings().workers)
workers = parser.parse_args().workers
if workers < 1:
    parser.error("--workers must be at least 1")
if workers > 1:
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
        prefix="pigeonhole-sync-metrics-"
    )
    shutil.rmtree(metrics_dir, ignore_errors=True)
    Path(metrics_dir).mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir

from services.sync.main import main  # noqa: E402  (after the metrics storage is chosen)

main(workers)
