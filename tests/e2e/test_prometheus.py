"""The real Prometheus of the local stack (Debian's package, started by `make up`): it scrapes
the four services, the alert rules load and evaluate, and every query of the Grafana
dashboard has something to draw after one small send."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import REPO
from tests.e2e.conftest import Operator

PROMETHEUS_URL = f"http://127.0.0.1:{os.environ.get('PIGEONHOLE_PROMETHEUS_PORT', '9090')}"
SERVICE_PORTS = {"8080", "8081", "9101", "9102"}
WITHIN = 90.0  # seconds; scrapes and rule evaluations run every 2 s


def alert_rules() -> dict[str, str]:
    rules = yaml.safe_load((REPO / "deploy/prometheus/alerts.yml").read_text())
    return {r["alert"]: r["expr"] for group in rules["groups"] for r in group["rules"]}


def dashboard_queries() -> list[str]:
    board = json.loads((REPO / "deploy/grafana/dashboards/pigeonhole.json").read_text())
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]


@pytest.fixture(scope="module", autouse=True)
def prometheus_with_current_rules() -> None:
    """`make up` starts Prometheus; this starts it on a stack brought up before it was part of
    it, and reloads it, so the rules under test are the ones in the working tree."""
    subprocess.run(
        ["bash", "deploy/local/stack.sh", "start", "prometheus"],
        cwd=REPO, check=True, timeout=300, stdout=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture
async def prometheus() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=PROMETHEUS_URL, timeout=30) as client:
        yield client


async def query(prometheus: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
    response = await prometheus.get("/api/v1/query", params={"query": expr})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def drawable(result: list[dict[str, Any]]) -> bool:
    """A panel draws a line for a sample that is a number (not NaN, which is what a quantile
    of nothing observed gives)."""
    return any(not math.isnan(float(sample["value"][1])) for sample in result)


async def until(
    missing: Callable[[], Awaitable[list[str]]], what: str, meanwhile: Callable[[], Awaitable[None]]
) -> None:
    """Poll (bounded) until ``missing()`` is empty, doing ``meanwhile()`` between looks."""
    deadline = time.monotonic() + WITHIN
    while left := await missing():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: {left}")
        await meanwhile()
        await asyncio.sleep(1)


async def nothing() -> None:
    return None


async def test_every_service_is_scraped(prometheus: httpx.AsyncClient) -> None:
    async def not_up() -> list[str]:
        response = await prometheus.get("/api/v1/targets")
        targets = response.json()["data"]["activeTargets"]
        up = {t["labels"]["instance"].rsplit(":", 1)[1] for t in targets if t["health"] == "up"}
        return sorted(SERVICE_PORTS - up)

    await until(not_up, "ports of services Prometheus does not scrape", nothing)


async def test_alert_rules_load_and_evaluate(prometheus: httpx.AsyncClient) -> None:
    expected = alert_rules()

    async def not_evaluated() -> list[str]:
        response = await prometheus.get("/api/v1/rules", params={"type": "alert"})
        groups = response.json()["data"]["groups"]
        healthy = {r["name"] for g in groups for r in g["rules"] if r["health"] == "ok"}
        return sorted(set(expected) - healthy)

    await until(not_evaluated, "alert rules not loaded or failing to evaluate", nothing)
    for expr in expected.values():
        await query(prometheus, expr)  # asserts it evaluates


async def test_every_dashboard_query_has_data_after_a_small_send(
    operator: Operator, device_api: httpx.AsyncClient, prometheus: httpx.AsyncClient
) -> None:
    content_id = await operator.inapp()
    who = await operator.contact("prom")
    job = await operator.send({"inAppMessage": {"inAppContentId": content_id}}, [who])
    await operator.delivered(job)
    headers = operator.device(who)

    async def phone_home() -> list[dict[str, Any]]:
        response = await device_api.post("/v1/sync", json={"platform": "gcm"}, headers=headers)
        assert response.status_code == 200, response.text
        messages: list[dict[str, Any]] = response.json()["messages"]
        return messages

    [message] = await phone_home()
    event = {"eventId": uuid.uuid4().hex, "messageId": message["id"], "type": "view",
             "at": datetime.now(UTC).isoformat()}  # fmt: skip
    seen = await device_api.post("/v1/events", json={"events": [event]}, headers=headers)
    assert seen.status_code == 200, seen.text

    async def device_keeps_using_the_app() -> None:
        # rates and quantiles need a change between two scrapes of a series, and a series a
        # service created for this device's first request starts at its first scrape
        await phone_home()

    async def empty_panels() -> list[str]:
        return [expr for expr in dashboard_queries() if not drawable(await query(prometheus, expr))]

    await until(empty_panels, "dashboard queries with nothing to draw", device_keeps_using_the_app)
