"""Live updates on the real stack: GET /v1/stream hears a delivery, another device's read,
resumes from Last-Event-ID, keeps contacts apart, and its tickets open one stream once."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.conftest import Operator
from tests.stack_control import start_stack_services, stop_stack_service

pytestmark = pytest.mark.e2e

WAIT = 30.0


class EventStream:
    """An open /v1/stream, read event by event (comments are heartbeats)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()
        self.heartbeats = 0

    async def next(self, within: float = WAIT) -> dict[str, Any]:
        """The next event as {"id", "event", "data"} (heartbeats skipped)."""
        async with asyncio.timeout(within):
            fields: dict[str, Any] = {}
            async for line in self._lines:
                if line == "" and "data" in fields:
                    return fields
                if line.startswith(":"):
                    self.heartbeats += 1
                    continue
                if ":" not in line:
                    continue
                name, _, value = line.partition(":")
                fields[name] = orjson.loads(value) if name == "data" else value.strip()
        raise AssertionError("the stream ended")

    async def quiet_for(self, seconds: float) -> bool:
        """True if no event (heartbeats aside) arrives within ``seconds``."""
        try:
            await self.next(within=seconds)
        except TimeoutError:
            return True
        return False


@contextlib.asynccontextmanager
async def opened(
    client: httpx.AsyncClient, headers: httpx.Headers | Mapping[str, str], **params: str
) -> AsyncIterator[EventStream]:
    async with client.stream("GET", "/v1/stream", headers=headers, params=params) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield EventStream(response)


async def test_a_delivery_reaches_the_contacts_stream_and_no_other(
    operator: Operator, device_api: httpx.AsyncClient
) -> None:
    reader, stranger = await operator.contact("s1"), await operator.contact("s2")
    message = await operator.inbox_message("Live")
    async with (
        opened(device_api, operator.device(reader)) as mine,
        opened(device_api, operator.device(stranger)) as theirs,
    ):
        first = await mine.next()
        assert first["event"] == "changed" and first["data"]["inboxUnreadCount"] == 0
        await theirs.next()
        sent = time.monotonic()
        await operator.send({"inboxMessage": {"inboxContentId": message}}, [reader])
        event = await mine.next()
        print(f"delivery -> stream event: {time.monotonic() - sent:.3f} s after the send call")
        assert event["data"]["inboxUnreadCount"] == 1
        # woken by delivery's signal, not found by the re-check after a heartbeat (15 s)
        assert mine.heartbeats == 0
        assert int(event["id"]) > int(first["id"])
        assert event["id"] == event["data"]["version"]
        assert await theirs.quiet_for(2.0), "another contact's stream heard of it"


async def test_a_read_on_one_device_reaches_the_others_stream(
    operator: Operator, device_api: httpx.AsyncClient
) -> None:
    who = await operator.contact("two-devices")
    job = await operator.send(
        {"inboxMessage": {"inboxContentId": await operator.inbox_message("Read me")}}, [who]
    )
    await operator.delivered(job)
    device = operator.device(who)
    async with opened(device_api, device) as phone:
        assert (await phone.next())["data"]["inboxUnreadCount"] == 1
        page = (await device_api.get("/v1/inbox", headers=device)).json()
        read = await device_api.post(f"/v1/inbox/{page['messages'][0]['id']}/read", headers=device)
        assert read.status_code == 200
        assert (await phone.next())["data"]["inboxUnreadCount"] == 0


async def test_a_reconnect_catches_up_from_last_event_id(
    operator: Operator, device_api: httpx.AsyncClient
) -> None:
    who = await operator.contact("resume")
    device = operator.device(who)
    async with opened(device_api, device) as stream:
        seen = (await stream.next())["id"]
    job = await operator.send(
        {"inboxMessage": {"inboxContentId": await operator.inbox_message("Missed")}}, [who]
    )
    await operator.delivered(job)
    async with opened(device_api, {**device, "Last-Event-ID": seen}) as stream:
        caught_up = await stream.next()
        assert caught_up["data"]["inboxUnreadCount"] == 1 and caught_up["id"] != seen
    async with opened(device_api, {**device, "Last-Event-ID": caught_up["id"]}) as stream:
        assert await stream.quiet_for(1.5), "nothing changed, yet an event came"


async def test_a_ticket_opens_one_stream_once_and_is_no_device_token(
    operator: Operator, device_api: httpx.AsyncClient
) -> None:
    who = await operator.contact("ticket")
    device = operator.device(who)
    answer = await device_api.post("/v1/stream/ticket", headers=device)
    assert answer.status_code == 200, answer.text
    ticket = answer.json()["ticket"]
    assert answer.json()["expiresInSeconds"] <= 60
    async with opened(device_api, {}, ticket=ticket) as stream:
        assert (await stream.next())["event"] == "changed"
    again = await device_api.get("/v1/stream", params={"ticket": ticket})
    assert again.status_code == 401 and "already used" in again.text
    as_token = {"X-App-Key": operator.app["appKey"], "Authorization": f"Bearer {ticket}"}
    assert (await device_api.get("/v1/inbox", headers=as_token)).status_code == 401
    for params in ({"ticket": "x"}, {"ticket": ticket[:-4] + "AAAA"}, {}):
        refused = await device_api.get("/v1/stream", params=params)
        assert refused.status_code == 401, (params, refused.text)
    assert (await device_api.post("/v1/stream/ticket")).status_code == 401


async def test_stopping_sync_ends_open_streams_cleanly(
    operator: Operator, device_api: httpx.AsyncClient
) -> None:
    """A stream never ends by itself: a stopping sync must end it (the final chunk, so the
    client sees a clean end and reconnects), not wait out its grace period and cut it."""
    who = await operator.contact("shutdown")
    try:
        async with opened(device_api, operator.device(who)) as stream:
            await stream.next()
            stopping = asyncio.create_task(
                asyncio.to_thread(stop_stack_service, "sync", signal.SIGTERM)
            )
            with pytest.raises(AssertionError, match="the stream ended"):
                await stream.next()
            await stopping
    finally:
        start_stack_services("sync")


async def test_bad_stream_requests_are_refused_or_harmless(
    operator: Operator, device_api: httpx.AsyncClient
) -> None:
    """What a fuzzer would send: hostile tickets and headers are a 401 or, where the value
    is only compared (Last-Event-ID), an ordinary stream; never a 5xx, never a hang."""
    device = operator.device(await operator.contact("bad-stream"))
    for params in (
        {"ticket": "\x00"},
        {"ticket": "a.b.c"},
        {"ticket": "x" * 5000},
        {"ticket": "e30.e30.e30"},
    ):
        refused = await device_api.get("/v1/stream", params=params)
        assert refused.status_code == 401, (params, refused.text)
    for query in ("ticket=%ED%A0%80", "ticket=%FF%FE", "ticket=&ticket=x", "ticket"):
        refused = await device_api.get(f"/v1/stream?{query}")
        assert refused.status_code == 401, (query, refused.text)
    odd = await device_api.get("/v1/stream", headers={**device, "Last-Event-ID": "\x7f"})
    assert odd.status_code == 400  # the HTTP parser refuses a DEL in a header
    for last in (b"9" * 5000, b"\xc3\xa9\xff", b"-1", b""):
        headers = httpx.Headers(
            [(k.encode(), v.encode()) for k, v in device.items()] + [(b"last-event-id", last)]
        )
        async with opened(device_api, headers) as stream:  # a full catch-up event
            assert (await stream.next())["event"] == "changed"
    for method in ("POST", "PUT", "DELETE", "HEAD"):
        answer = await device_api.request(method, "/v1/stream", headers=device)
        assert answer.status_code == 405, (method, answer.status_code)
