"""uvicorn's httptools protocol with the timeouts uvicorn lacks.

uvicorn closes idle kept-alive connections, but a client that connects and sends nothing,
or half a request line, or headers without their end, or a body that stops half way, holds
its connection (and, once the request reached the app, a task and a pool slot) forever.
Here every connection must:

- send its request line and headers within ``header_timeout`` of connecting, or of the
  first byte of its next request on a kept-alive connection, in at most
  ``max_header_bytes``: otherwise it is answered ``408`` (``431`` when too large) and closed;
- never pause longer than ``body_timeout`` between two pieces of its body: otherwise it is
  closed (answered ``408`` when the app has not answered yet), and the app's read of the
  body ends as a client disconnect.

Time during which the server itself does not read (flow control: the app has not consumed
what was sent) does not count.

One timer per connection at a time, re-armed in the parser's callbacks: no task and no
polling. Waiting for the app's answer is not bounded here.

A connection refused before the app saw its request (408, 431, 400 for a malformed one)
is closed gracefully: the answer is followed by a half-close, and what the client still
sends is read and dropped for ``LINGER_SECONDS``. Closing at once would make the kernel
answer the client's unread bytes with a reset, which can destroy the answer before the
client reads it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

LINGER_SECONDS = 2.0


class _HeadersTooLarge(Exception):
    """Raised in a parser callback: the parser stops, uvicorn answers through
    ``send_400_response``, which answers 431 instead."""


def _status_only(status: bytes) -> bytes:
    return b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


_TIMEOUT = _status_only(b"408 Request Timeout")
_TOO_LARGE = _status_only(b"431 Request Header Fields Too Large")


class TimedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout: float = 10.0
    body_timeout: float = 15.0
    max_header_bytes: int = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._reading_body = False
        self._too_large = False
        self._lingering = False

    @classmethod
    def with_limits(
        cls, header_timeout: float, body_timeout: float, max_header_bytes: int
    ) -> type[TimedHttpToolsProtocol]:
        """A subclass with these limits (uvicorn instantiates the class itself)."""
        limits = {
            "header_timeout": header_timeout,
            "body_timeout": body_timeout,
            "max_header_bytes": max_header_bytes,
        }
        return type("TimedHttpToolsProtocol", (cls,), limits)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout)
        resume = self.flow.resume_reading

        def resume_reading() -> None:
            # The client's time starts again when the server reads again: a deadline armed
            # while reading was paused may be about to expire, before the bytes waiting in
            # the socket are read (a 408 for a client that did nothing wrong).
            if self.flow.read_paused and self._reading_body:
                self._arm(self.body_timeout)
            resume()

        self.flow.resume_reading = resume_reading  # type: ignore[method-assign]

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # answered and half-closed: drop what still comes
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        self._disarm()
        if self._too_large:
            self.transport.write(_TOO_LARGE)
        else:
            body = msg.encode("ascii", errors="replace")
            self.transport.write(
                STATUS_LINE[400]
                + b"content-type: text/plain; charset=utf-8\r\n"
                + b"content-length: " + str(len(body)).encode() + b"\r\n"
                + b"connection: close\r\n\r\n" + body
            )  # fmt: skip
        self._linger()

    def _linger(self) -> None:
        """Half-close after an answer, drop what the client still sends, close later."""
        self._lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._disarm()
        self._deadline = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._arm(self.header_timeout)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count_header_bytes(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._count_header_bytes(len(name) + len(value))

    def _count_header_bytes(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            self._too_large = True
            raise _HeadersTooLarge

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._reading_body = True
        self._arm(self.body_timeout)

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._arm(self.body_timeout)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_body = False
        self._disarm()

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self._lingering:
            return
        if self.flow is not None and self.flow.read_paused:
            # The server stopped reading (the app has not consumed the body yet, or answers
            # a pipelined request first): the wait is ours, not the client's.
            self._arm(self.body_timeout if self._reading_body else self.header_timeout)
            return
        if self._reading_body:
            # the app has the request: the close ends its read of the body as a disconnect
            if not (self.cycle is not None and self.cycle.response_started):
                self.transport.write(_TIMEOUT)
            self.transport.close()
            return
        self.transport.write(_TIMEOUT)
        self._linger()
