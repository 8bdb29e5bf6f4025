"""The README's "Produce from the host" records, produced as written (ids made unique) to
the local stack, are taken by the publisher: the contact exists, the send request makes a
send job that reaches the contact's inbox. The records are produced with aiokafka, the
same bytes, keys and topics that the README's kcat and console-producer commands send."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from string import Template
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from shared.topics import CONTACTS, SEND_REQUESTS
from tests.conftest import REPO
from tests.seed_payloads import BOTTOM_BANNER

FENCE = "`" * 3


@dataclass(frozen=True)
class Produced:
    bootstrap: str
    topic: str
    key: str
    value: str


def readme_records() -> list[Produced]:
    """Each record of the section's heredocs, with the command's bootstrap, topic and
    key separator."""
    section = (REPO / "README.md").read_text().split("### Produce from the host", 1)[1]
    section = section.split("\n## ", 1)[0]
    records = []
    pattern = rf"{FENCE}sh\n(.*?){FENCE}"
    for block in re.findall(pattern, section, re.S):
        for command, body in re.findall(r"((?:.*\\\n)*.*)<<'?EOF'?\n(.*?)\nEOF", block):
            bootstrap = re.search(r"(?:-b|--bootstrap-server) (\S+)", command)
            topic = re.search(r"(?:-t|--topic) (\S+)", command)
            separator = re.search(r"(?:-K|key\.separator=)'?(.)", command)
            assert bootstrap and topic and separator, command
            for line in body.splitlines():
                key, value = line.split(separator[1], 1)
                records.append(Produced(bootstrap[1], topic[1], key, value))
    return records


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 30) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if found := await check():
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {within}s")


def test_the_readme_shows_a_contact_upsert_and_a_send_request() -> None:
    records = readme_records()
    topics = [r.topic for r in records]
    assert topics.count(CONTACTS.name) == 2 and topics.count(SEND_REQUESTS.name) == 1
    assert {r.bootstrap for r in records} == {"127.0.0.1:9092", "kafka:19092"}


async def produce(records: list[Produced], values: dict[str, str], contact_id: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9092", acks="all")
    await producer.start()
    try:
        for record in records:
            key, value = (
                Template(text.replace("13507", contact_id)).substitute(values)
                for text in (record.key, record.value)
            )
            await producer.send_and_wait(record.topic, value.encode(), key=key.encode())
    finally:
        await producer.stop()


async def test_the_readme_records_are_taken_by_the_publisher(
    api: httpx.AsyncClient, app: dict[str, str], pool: asyncpg.Pool
) -> None:
    content = await api.post("/channels/push/inappcontent", json=BOTTOM_BANNER)
    contact_id, request_id = f"readme-{uuid.uuid4().hex[:10]}", f"req-{uuid.uuid4().hex}"
    values = {"APP_KEY": app["appKey"], "CONTENT_ID": content.json()["data"]["id"]}
    values["REQUEST_ID"] = request_id
    records = readme_records()

    async def contact() -> dict[str, Any] | None:
        response = await api.get(f"/contacts/{contact_id}")
        data: dict[str, Any] | None = response.json()["data"]
        return data if data and "plan" in data["attributes"] else None

    # the contact first, as a reader of the README would: a send to a contact the
    # publisher does not know yet skips it (unknown_contact)
    await produce([r for r in records if r.topic == CONTACTS.name], values, contact_id)
    shown = await eventually(contact)
    assert shown["attributes"] == {"first_name": "Ann", "plan": "gold"}
    assert shown["subscriptions"] == {"offers": True}

    async def filed() -> int:
        count: int = await pool.fetchval(
            "SELECT count(*) FROM inbox_entries e JOIN send_jobs j ON j.id = e.send_job_id"
            " WHERE j.request_id = $1 AND e.contact_id = $2",
            f"kafka:{request_id}",
            contact_id,
        )
        return count

    await produce([r for r in records if r.topic == SEND_REQUESTS.name], values, contact_id)
    assert await eventually(filed) == 1
