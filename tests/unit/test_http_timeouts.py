"""The timed HTTP protocol on a real uvicorn server in process, with short limits."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from shared.http_timeouts import TimedHttpToolsProtocol

HEADER_TIMEOUT, BODY_TIMEOUT, MAX_HEADER_BYTES = 0.3, 0.5, 2048


async def slow_reader(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads its body only after longer than the body timeout, then says its size."""
    if scope["type"] != "http":
        return
    await asyncio.sleep(BODY_TIMEOUT * 3)
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


@pytest.fixture
async def port() -> AsyncIterator[int]:
    # Listening before the server starts: connections wait in the backlog, no start-up race.
    sock = socket.create_server(("127.0.0.1", 0))
    protocol = TimedHttpToolsProtocol.with_limits(HEADER_TIMEOUT, BODY_TIMEOUT, MAX_HEADER_BYTES)
    config = uvicorn.Config(slow_reader, http=protocol, lifespan="off", log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    yield sock.getsockname()[1]
    server.should_exit = True
    await task
    sock.close()


async def _answer(port: int, *parts: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for part in parts:
        writer.write(part)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def test_silent_and_half_sent_requests_get_408(port: int) -> None:
    assert (await _answer(port)).startswith(b"HTTP/1.1 408 ")
    assert (await _answer(port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Le")).startswith(
        b"HTTP/1.1 408 "
    )
    half_body = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345"
    assert (await _answer(port, half_body)).startswith(b"HTTP/1.1 408 ")


async def test_oversized_headers_get_431(port: int) -> None:
    headers = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 100) for i in range(30))
    answer = await _answer(port, b"GET / HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")


async def test_a_body_the_app_reads_late_is_not_timed_out(port: int) -> None:
    """The server stops reading while the app has not consumed the body: not the client's
    fault, so not a timeout."""
    body = b"x" * 1_000_000
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        response = await client.post("/", content=body)
    assert (response.status_code, response.text) == (200, str(len(body)))
