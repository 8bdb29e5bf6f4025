"""Live updates: ``GET /v1/stream`` (Server-Sent Events) and its tickets.

A stream sends ``event: changed`` with ``id:`` = the contact's inbox version and data
``{"version", "inboxUnreadCount"}`` whenever the version moves: at once when the stream
opens and the device's ``Last-Event-ID`` is missing or older (so a reconnect after a gap
gets one event, never silence), then each time the contact's inbox changes (a delivery, a
read or delete on another device). Events coalesce: a burst of changes while one is being
sent makes one more event. A comment line every ``HEARTBEAT_SECONDS`` keeps proxies from
closing an idle stream and lets a dead client be noticed.

Waking is cheap: one Redis subscription per process (``Hub``) hears every bucket's
"changed" signal (shared/inbox_signals.py) and sets the events of the streams it holds
for the contacts named; only those streams read Redis and PostgreSQL. A stream also
re-checks after each heartbeat and after the hub reconnects, so a lost signal delays an
event by at most a heartbeat.

Authentication: the device headers (``X-App-Key`` and the bearer token, for fetch-based
clients), or ``?ticket=`` for a browser's EventSource, which cannot send headers. A ticket
comes from ``POST /v1/stream/ticket`` (device headers), is valid for ``TICKET_SECONDS``,
opens one stream once, and cannot be used as a device token (its audience).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import jwt
import orjson

from services.sync import inbox, phone_home
from services.sync.auth import AppCache, Device, Unauthorized
from shared.inbox_signals import PATTERN, decode
from shared.redis_client import RedisClient

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
TICKET_SECONDS = 60
TICKET_AUDIENCE = "pigeonhole-stream"
RECONNECT_SECONDS = (0.1, 0.5, 1.0, 2.0, 5.0)


class Hub:
    """The process's one subscription to the "changed" signals, and the streams it wakes."""

    def __init__(self, redis: RedisClient) -> None:
        self.redis = redis
        self._streams: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self.closing = False

    @property
    def open_streams(self) -> int:
        return sum(len(events) for events in self._streams.values())

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="stream-hub")

    async def stop(self) -> None:
        self.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def close(self) -> None:
        """End every stream (the server is stopping): each returns at its next wake."""
        self.closing = True
        self._wake_all()

    @contextlib.contextmanager
    def listening(self, contact_id: str) -> Iterator[asyncio.Event]:
        woken = asyncio.Event()
        self._streams.setdefault(contact_id, set()).add(woken)
        try:
            yield woken
        finally:
            held = self._streams.get(contact_id)
            if held is not None:
                held.discard(woken)
                if not held:
                    del self._streams[contact_id]

    def wake(self, contact_ids: list[str]) -> None:
        for contact_id in contact_ids:
            for woken in self._streams.get(contact_id, ()):
                woken.set()

    def _wake_all(self) -> None:
        for events in self._streams.values():
            for woken in events:
                woken.set()

    async def _listen_forever(self) -> None:
        failures = 0
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down or gone: streams re-check once back
                pause = RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)]
                failures += 1
                log.warning("stream hub: %s; subscribing again in %.1fs", exc, pause)
                await asyncio.sleep(pause)
            else:
                failures = 0

    async def _listen(self) -> None:
        pubsub = self.redis.pubsub()
        try:
            await pubsub.psubscribe(PATTERN)
            self._wake_all()  # signals may have been missed while not subscribed
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                if message is not None and message["type"] == "pmessage":
                    self.wake(decode(message["data"]))
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]


def issue_ticket(device: Device) -> dict[str, Any]:
    """A one-time ticket that opens a stream for this device within TICKET_SECONDS."""
    claims = {
        "sub": device.contact_id,
        "app": device.app.app_key,
        "aud": TICKET_AUDIENCE,
        "exp": int(time.time()) + TICKET_SECONDS,
        "jti": uuid.uuid4().hex,
    }
    return {
        "ticket": jwt.encode(claims, device.app.secret, algorithm="HS256"),
        "expiresInSeconds": TICKET_SECONDS,
    }


async def redeem_ticket(apps: AppCache, redis: RedisClient, ticket: str) -> Device:
    """The device a ticket was issued to; Unauthorized if it is forged, expired or used."""
    try:
        app_key = jwt.decode(ticket, options={"verify_signature": False}).get("app")
    except jwt.PyJWTError as exc:
        raise Unauthorized("malformed stream ticket") from exc
    app = await apps.get(app_key) if isinstance(app_key, str) else None
    if app is None:
        raise Unauthorized("invalid stream ticket")
    try:
        claims = jwt.decode(
            ticket, app.secret, algorithms=["HS256"], audience=TICKET_AUDIENCE,
            options={"require": ["exp", "sub", "jti"]},
        )  # fmt: skip
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"invalid stream ticket: {exc}") from exc
    jti, contact_id = claims["jti"], claims["sub"]
    if not isinstance(jti, str) or not isinstance(contact_id, str) or not contact_id:
        raise Unauthorized("invalid stream ticket")
    if not await redis.set(f"ph:ticket:{jti}", 1, nx=True, ex=TICKET_SECONDS * 2):
        raise Unauthorized("stream ticket already used: ask for a new one")
    return Device(app, contact_id)


class Stream:
    """One device's stream: the first event (sent before the answer starts, so a
    dependency that is down is a 503, not a broken stream), then the rest."""

    def __init__(self, state: Any, device: Device, last_event_id: str | None) -> None:
        self.state, self.device, self.sent = state, device, last_event_id

    async def first(self) -> bytes:
        return b"retry: 3000\n\n" + await self.changed()

    async def rest(self, woken: asyncio.Event) -> AsyncIterator[bytes]:
        hub: Hub = self.state.stream_hub
        while not hub.closing:
            try:
                await asyncio.wait_for(woken.wait(), HEARTBEAT_SECONDS)
            except TimeoutError:
                yield b": heartbeat\n\n"
            woken.clear()
            if hub.closing:
                return
            if event := await self.changed():
                yield event

    async def changed(self) -> bytes:
        """An event if the version moved since the last one sent, else nothing."""
        contact, app_key = self.device.contact_id, self.device.app.app_key
        version = await phone_home.current_version(self.state.versions, contact)
        if version == self.sent:
            return b""
        unread = await inbox.unread_count(self.state.pool, contact, app_key)
        self.sent = version
        data = orjson.dumps({"version": version, "inboxUnreadCount": unread})
        return b"id: " + version.encode() + b"\nevent: changed\ndata: " + data + b"\n\n"
