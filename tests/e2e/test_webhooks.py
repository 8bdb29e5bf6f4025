"""Outbound webhooks against a real HTTP receiver: signed delivered/skipped/engaged events,
no loss through an outage, dead letters and their replay, the endpoint API
(docs/webhooks.md). The local stack allows loopback targets and retries within seconds."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from services.publisher.webhooks.signing import SIGNATURE_HEADER, verify
from tests.e2e.conftest import Operator

OUTAGE_SECONDS = 30


class Receiver:
    """A webhook receiver in a thread: answers ``status``, keeps every request."""

    def __init__(self) -> None:
        self.status = 200
        self.requests: list[tuple[int, str, bytes]] = []  # (answered, signature, body)
        receiver = self
        self.server: ThreadingHTTPServer | None

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.status
                receiver.requests.append((status, self.headers[SIGNATURE_HEADER], body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.handler = Handler
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.start()

    def start(self) -> None:
        if self.server is None:  # listening again on the same port
            self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self.handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop listening: connections are refused."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def events(self, secret: str) -> list[dict[str, Any]]:
        """Every event of an accepted request, each request's signature checked."""
        out = []
        for status, signature, body in list(self.requests):
            assert verify(secret, body, signature), signature
            if status == 200:
                out.extend(json.loads(body)["events"])
        return out


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


async def until(check: Callable[[], Awaitable[Any]], within: float = 60) -> Any:
    """What ``check`` gives once truthy, or its last falsy answer after ``within`` s."""
    deadline = time.monotonic() + within
    result = await check()
    while not result and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        result = await check()
    return result


async def register(api: httpx.AsyncClient, app_key: str, url: str, **extra: Any) -> Any:
    body = {"url": url, "events": ["delivered", "skipped", "engaged"], **extra}
    response = await api.post(f"/apps/{app_key}/webhooks", json=body)
    assert response.status_code == 201, response.text
    return response.json()["data"]


async def test_signed_delivered_skipped_and_engaged_events(
    operator: Operator, api: httpx.AsyncClient, device_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    hook = await register(api, operator.app["appKey"], receiver.url)
    contact, ghost = await operator.contact("wh"), f"ghost-{uuid.uuid4().hex[:8]}"
    content_id = await operator.inapp()
    job = await operator.send({"inAppMessage": {"inAppContentId": content_id}}, [contact, ghost])
    await operator.delivered(job)
    headers = operator.device(contact)
    [message] = (await device_api.post("/v1/sync", json={"platform": "gcm"},
                                       headers=headers)).json()["messages"]  # fmt: skip
    at = datetime.now(UTC).isoformat()
    event = {"eventId": uuid.uuid4().hex, "messageId": message["id"], "type": "click", "at": at}
    response = await device_api.post("/v1/events", json={"events": [event]}, headers=headers)
    assert response.status_code == 200, response.text

    async def three() -> list[dict[str, Any]] | None:
        got = receiver.events(hook["secret"])
        return got if {e["type"] for e in got} >= {"delivered", "skipped", "engaged"} else None

    got = {e["type"]: e for e in await until(three) or []}
    assert got["delivered"]["data"]["contactId"] == contact
    assert got["delivered"]["data"]["jobId"] == job
    assert got["delivered"]["appKey"] == operator.app["appKey"]
    assert got["skipped"]["data"] == {"jobId": job, "contentId": content_id, "contactId": ghost,
                                      "isTest": False, "reason": "unknown_contact"}  # fmt: skip
    assert got["engaged"]["data"]["action"] == "click"
    assert got["engaged"]["data"]["messageId"] == message["id"]
    # a signature made with another secret, or an old one, does not verify
    _, signature, body = receiver.requests[0]
    assert not verify("whsec_other", body, signature)
    assert not verify(hook["secret"], body, signature, now=time.time() + 600)


async def test_an_outage_loses_nothing_and_blocks_no_delivery(
    operator: Operator, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.status, down_since = 500, time.monotonic()
    hook = await register(api, operator.app["appKey"], receiver.url, events=["delivered"])
    content_id = await operator.inapp()
    contacts = [await operator.contact("wo") for _ in range(4)]
    jobs = []
    for pair in (contacts[:2], contacts[2:]):
        job = await operator.send({"inAppMessage": {"inAppContentId": content_id}}, pair)
        await operator.delivered(job, 2)  # delivery goes on while the receiver is down
        jobs.append(job)

    async def retried() -> bool:
        return sum(1 for status, _, _ in receiver.requests if status == 500) >= 2

    assert await until(retried), receiver.requests
    receiver.stop()  # and then not even listening, for the rest of 30 seconds
    await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_since)))
    receiver.status = 200
    receiver.start()

    async def everything() -> set[str] | None:
        got = {e["data"]["contactId"] for e in receiver.events(hook["secret"])}
        return got if got == set(contacts) else None

    assert await until(everything) == set(contacts)
    ids = [e["id"] for e in receiver.events(hook["secret"])]
    assert len(set(ids)) == len(contacts)  # one stable id per event, duplicates or not


async def test_dead_letters_after_max_attempts_and_replay(
    operator: Operator, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.status = 503
    app_key = operator.app["appKey"]
    hook = await register(api, app_key, receiver.url, events=["delivered"], maxAttempts=2)
    content_id = await operator.inapp()
    contacts = [await operator.contact("wd") for _ in range(3)]
    job = await operator.send({"inAppMessage": {"inAppContentId": content_id}}, contacts)
    await operator.delivered(job, 3)
    dead_url = f"/apps/{app_key}/webhooks/{hook['id']}/dead-letters"

    async def dead() -> list[dict[str, Any]] | None:
        letters: list[dict[str, Any]] = (await api.get(dead_url)).json()["data"]
        return letters if len(letters) == 3 else None

    letters = await until(dead) or []
    assert {d["event"]["data"]["contactId"] for d in letters} == set(contacts)
    assert all(d["attempts"] == 2 and d["lastError"] == "HTTP 503" for d in letters)
    assert receiver.events(hook["secret"]) == []
    receiver.status = 200
    one = await api.post(dead_url + "/replay", json={"ids": [letters[0]["id"]]})
    assert one.json()["data"] == {"replayed": 1}
    rest = await api.post(dead_url + "/replay", json={})
    assert rest.json()["data"] == {"replayed": 2}

    async def delivered() -> set[str] | None:
        got = {e["data"]["contactId"] for e in receiver.events(hook["secret"])}
        return got if got == set(contacts) else None

    assert await until(delivered) == set(contacts)
    assert (await api.get(dead_url)).json()["data"] == []


async def test_endpoint_api(operator: Operator, api: httpx.AsyncClient, receiver: Receiver) -> None:
    app_key = operator.app["appKey"]
    base = f"/apps/{app_key}/webhooks"
    for body, field in [
        ({"url": "ftp://example.com/x", "events": ["delivered"]}, "url"),
        ({"url": "http://user:pw@example.com/", "events": ["delivered"]}, "url"),
        ({"url": receiver.url, "events": []}, "events"),
        ({"url": receiver.url, "events": ["opened"]}, "events.0"),
    ]:
        response = await api.post(base, json=body)
        assert response.status_code == 400, response.text
        assert field in response.json()["meta"]["fieldErrors"], response.json()
    assert (await api.get(base)).json()["data"] == []
    body = {"url": receiver.url, "events": ["engaged"]}
    missing = await api.post("/apps/no-such-app/webhooks", json=body)
    assert missing.status_code == 404

    hook = await register(api, app_key, receiver.url)
    assert hook["secret"].startswith("whsec_")
    [listed] = (await api.get(base)).json()["data"]
    assert "secret" not in listed and listed["deadLetters"] == 0
    refused = await api.patch(f"{base}/{hook['id']}", json={"url": None})
    assert refused.status_code == 400 and "url" in refused.json()["meta"]["fieldErrors"]
    changed = await api.patch(f"{base}/{hook['id']}", json={"events": ["engaged"],
                                                            "enabled": False})  # fmt: skip
    assert changed.json()["data"]["events"] == ["engaged"]
    assert changed.json()["data"]["enabled"] is False

    ping = await api.post(f"{base}/{hook['id']}/ping", json={})
    assert ping.json()["data"] == {"delivered": True, "error": None}
    [event] = receiver.events(hook["secret"])
    assert event["type"] == "ping"

    assert (await api.delete(f"{base}/{hook['id']}")).status_code == 200
    assert (await api.delete(f"{base}/{hook['id']}")).status_code == 404
    assert (await api.post(f"{base}/{hook['id']}/ping", json={})).status_code == 404
