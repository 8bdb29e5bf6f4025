"""The fault suite: a 20,000-recipient campaign on the real stack while one part fails.

Each test breaks one thing in the middle of a campaign (the Kafka broker, PostgreSQL or
Redis stopped and started again with the stack's own script; a service SIGKILLed and
started again) and then asserts what an operator would check: every recipient filed
exactly once, ``GET /stats`` equal to the truth in the inbox, and every service ready
again without anyone restarting it (for the dependency faults). Each test also records
how long the system took to recover; the table is printed at the end of the run.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from tests.conftest import REPO
from tests.seed_payloads import BOTTOM_BANNER
from tests.stack_control import PORTS, STATE_DIR, start_stack_services

AUDIENCE = 20_000
# A batch holds one bucket's recipients (~80 of 20,000 over 256 buckets): 256 batches with
# a short pause last long enough (~20 s) for a fault to land in the middle of the campaign
BATCHING = {"recipientsPerBatch": 500, "pauseSeconds": 0.05}
REPORT = STATE_DIR / "faults" / "report.jsonl"


# ---------------------------------------------------------------- the stack's parts


def stack(action: str, part: str) -> None:
    """Start or stop Kafka, PostgreSQL or Redis with the stack's own script."""
    subprocess.run(
        ["bash", "deploy/local/stack.sh", action, part], cwd=REPO, check=True, timeout=240,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


async def all_ready(within: float) -> dict[str, float]:
    """Seconds until each service's /readyz answered 200 (raises if one never does)."""
    started, seen = time.monotonic(), {}
    async with httpx.AsyncClient(timeout=3) as client:
        while time.monotonic() - started < within:
            for name, port in PORTS.items():
                if name in seen:
                    continue
                try:
                    response = await client.get(f"http://127.0.0.1:{port}/readyz")
                except httpx.HTTPError:
                    continue
                if response.status_code == 200:
                    seen[name] = round(time.monotonic() - started, 1)
            if len(seen) == len(PORTS):
                return seen
            await asyncio.sleep(0.5)
    missing = sorted(set(PORTS) - set(seen))
    raise AssertionError(f"not ready {within:.0f} s after the fault ended: {missing}")


async def services_not_ready_during(seconds: float) -> set[str]:
    """The services whose /readyz answered anything but 200 at least once while polled
    for ``seconds`` (once when 0)."""
    seen: set[str] = set()
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            for name, port in PORTS.items():
                try:
                    response = await client.get(f"http://127.0.0.1:{port}/readyz")
                except httpx.HTTPError:
                    seen.add(name)
                    continue
                if response.status_code != 200:
                    seen.add(name)
            if time.monotonic() >= deadline:
                return seen
            await asyncio.sleep(0.5)


def log_lines() -> int:
    """Lines the four services have logged so far (their logs in .stack/logs)."""
    total = 0
    for name in PORTS:
        path = STATE_DIR / "logs" / f"{name}.log"
        if path.exists():
            with path.open("rb") as log:
                total += sum(1 for _ in log)
    return total


@pytest.fixture
def stack_restored() -> Iterator[None]:
    """Whatever a test broke is running again afterwards, for the tests that follow."""
    try:
        yield
    finally:
        for part in ("postgres", "redis", "kafka"):
            stack("start", part)
        start_stack_services()


# ---------------------------------------------------------------- the campaign


@dataclass
class FaultReport:
    fault: str
    filed: int
    expected: int
    duplicates: int
    recovery_seconds: float
    note: str = ""


def record(report: FaultReport) -> None:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    with REPORT.open("a") as out:
        out.write(json.dumps(asdict(report)) + "\n")


@pytest.fixture(scope="session")
async def audience(admin_token: str) -> list[str]:
    """20,000 contacts (imported once for the whole suite)."""
    run = uuid.uuid4().hex[:8]
    ids = [f"fault-{run}-{i}" for i in range(AUDIENCE)]
    body = b"".join(
        orjson.dumps({"contactId": c, "attributes": {"faultRun": run, "first_name": f"F{i}"}})
        + b"\n"
        for i, c in enumerate(ids)
    )
    headers = {"Authorization": f"Bearer {admin_token}", "content-type": "application/x-ndjson"}
    async with httpx.AsyncClient(base_url="http://127.0.0.1:8080", timeout=120) as api:
        response = await api.post("/contacts/batch", content=body, headers=headers)
    assert response.status_code == 200, response.text
    return ids


@pytest.fixture
async def source_id(api: httpx.AsyncClient, audience: list[str]) -> int:
    response = await api.post("/contact-sources", json={"name": "faults", "contactIds": audience})
    assert response.status_code == 201, response.text
    source: int = response.json()["data"]["id"]
    return source


class Campaign:
    """One campaign of the seed's bottom banner to the suite's audience."""

    def __init__(self, api: httpx.AsyncClient, pool: asyncpg.Pool, app_key: str) -> None:
        self.api, self.pool, self.app_key = api, pool, app_key
        self.id = 0

    async def start(self, source: int, **content_fields: Any) -> int:
        content = await self.api.post(
            "/channels/push/inappcontent", json={**BOTTOM_BANNER, **content_fields}
        )
        assert content.status_code == 201, content.text
        body = {
            "name": f"fault {uuid.uuid4().hex[:6]}",
            "content": {"inAppMessage": {"inAppContentId": content.json()["data"]["id"]}},
            "appKeys": [self.app_key],
            "include": [source],
            "batching": BATCHING,
            "startNow": True,
        }
        response = await self.api.post("/campaigns", json=body)
        assert response.status_code == 201, response.text
        self.id = response.json()["data"]["id"]
        return self.id

    async def status(self) -> dict[str, Any]:
        response = await self.api.get(f"/campaigns/{self.id}")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    async def batches_sent_at_least(self, n: int, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while (await self.status())["batchesSent"] < n:
            assert time.monotonic() < deadline, f"fewer than {n} batches sent in {within} s"
            await asyncio.sleep(0.1)

    async def completed(self, within: float = 240) -> float:
        """Wait until the campaign is completed and every entry is filed; return when."""
        deadline = time.monotonic() + within
        while True:
            with_errors_allowed = await _status_or_none(self.api, self.id)
            if with_errors_allowed and with_errors_allowed["status"] == "completed":
                filed = await self.pool.fetchval(
                    "SELECT count(*) FROM inbox_entries WHERE send_job_id = $1", self.id
                )
                if filed >= AUDIENCE:
                    return time.monotonic()
            assert time.monotonic() < deadline, f"campaign {self.id} not done in {within} s"
            await asyncio.sleep(0.5)

    async def filed(self) -> tuple[int, int]:
        """(distinct contacts filed, entries beyond one per contact)."""
        row: Any = await self.pool.fetchrow(
            """SELECT count(DISTINCT contact_id) AS contacts, count(*) AS entries
                 FROM inbox_entries WHERE send_job_id = $1""",
            self.id,
        )
        return row["contacts"], row["entries"] - row["contacts"]

    async def stats_match_truth(self, within: float = 60) -> dict[str, Any]:
        """GET /stats equals the inbox: every recipient targeted and delivered, none
        skipped (statistics follow Kafka, so they are given a little while)."""
        truth = await self.pool.fetchval(
            "SELECT count(*) FROM inbox_entries WHERE send_job_id = $1", self.id
        )
        deadline = time.monotonic() + within
        while True:
            response = await self.api.get("/stats", params={"campaignId": self.id})
            data: dict[str, Any] = response.json()["data"] if response.is_success else {}
            if data.get("delivered") == truth and data.get("targeted") == AUDIENCE:
                assert sum(data["skipped"].values()) == 0, data
                return data
            assert time.monotonic() < deadline, f"stats {data} != {truth} filed"
            await asyncio.sleep(0.5)


async def _status_or_none(api: httpx.AsyncClient, campaign_id: int) -> dict[str, Any] | None:
    try:
        response = await api.get(f"/campaigns/{campaign_id}")
    except httpx.HTTPError:
        return None  # the publisher is the part being broken
    if response.status_code != 200:
        return None
    data: dict[str, Any] = response.json()["data"]
    return data


@pytest.fixture
async def campaign(api: httpx.AsyncClient, pool: asyncpg.Pool, app: dict[str, str]) -> Campaign:
    return Campaign(api, pool, app["appKey"])


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not REPORT.exists() or os.environ.get("PIGEONHOLE_FAULT_TABLE") == "0":
        return
    rows = [json.loads(line) for line in REPORT.read_text().splitlines() if line.strip()]
    if not rows:
        return
    terminalreporter.section("fault table")
    terminalreporter.write_line(
        f"{'fault':44} {'filed/expected':>16} {'duplicates':>10} {'recovery s':>10}"
    )
    for row in rows:
        terminalreporter.write_line(
            f"{row['fault']:44} {row['filed']:>7}/{row['expected']:<8} "
            f"{row['duplicates']:>10} {row['recovery_seconds']:>10}  {row['note']}"
        )


def reset_report() -> None:
    REPORT.unlink(missing_ok=True)


reset_report()
