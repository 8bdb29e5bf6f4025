"""The HTTP services time out slow and idle clients (``shared.http_timeouts``): hundreds of
connections that send half a request are closed by the server, and meanwhile a normal
request is answered as usual."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from shared.settings import HttpServerSettings, PublisherSettings, SyncSettings

pytestmark = pytest.mark.integration

HALF_HEADERS = b"POST /v1/sync HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le"
HALF_BODY = (
    b"POST /v1/sync HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
    b'Content-Length: 100\r\n\r\n{"platform": '
)
SERVICES = {"publisher": PublisherSettings(), "sync": SyncSettings()}
HALF_OPEN = {"publisher": 200, "sync": 500}


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _open(port: int, payload: bytes, count: int) -> list[Connection]:
    async def one() -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(payload)
        await writer.drain()
        return reader, writer  # the writer is kept: dropping it would close the connection

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def _closed_by_server(connection: Connection, within: float) -> bytes:
    """What the server sent before closing (it never closes: TimeoutError, a failure)."""
    reader, writer = connection
    try:
        return await asyncio.wait_for(reader.read(), within)
    finally:
        writer.close()


@pytest.mark.parametrize("service", ["publisher", "sync"])
async def test_half_sent_requests_are_closed_and_normal_requests_still_served(
    service: str,
) -> None:
    settings: HttpServerSettings = SERVICES[service]
    started = time.monotonic()
    half_headers = await _open(settings.port, HALF_HEADERS, HALF_OPEN[service])
    half_bodies = await _open(settings.port, HALF_BODY, 50)

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}") as client:
        assert (await client.get("/healthz")).status_code == 200

    bound = settings.http_body_timeout_seconds * 2 + 10  # only so a failure cannot hang
    answers = await asyncio.gather(
        *(_closed_by_server(r, bound) for r in half_headers + half_bodies)
    )
    elapsed = time.monotonic() - started
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), {a[:40] for a in answers}
    print(f"{service}: {len(answers)} half-sent requests closed with 408 in {elapsed:.1f}s")


async def test_oversized_headers_are_refused_with_431() -> None:
    settings = SyncSettings()
    reader, writer = await asyncio.open_connection("127.0.0.1", settings.port)
    filler = b"x" * 1000
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    for i in range(settings.http_max_header_bytes // 1000 + 2):
        writer.write(b"X-Filler-%d: %s\r\n" % (i, filler))
    writer.write(b"\r\n")
    await writer.drain()
    answer = await _closed_by_server((reader, writer), settings.http_header_timeout_seconds + 10)
    assert answer.startswith(b"HTTP/1.1 431 ")
