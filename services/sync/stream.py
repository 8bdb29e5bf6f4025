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
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import asyncpg
import jwt
import orjson
from starlette.types import Receive, Scope, Send

from services.sync import phone_home
from services.sync.auth import App, AppCache, Device, Unauthorized, verify
from services.sync.inbox import UNREAD
from services.sync.metrics import OPEN_STREAMS
from shared.http_errors import EXPECTED, answer_for
from shared.inbox_signals import PATTERN, decode
from shared.redis_client import RedisClient

log = logging.getLogger(__name__)

PATH = "/v1/stream"
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
        self.open_streams = 0
        self.subscribed = asyncio.Event()  # set while the subscription is up

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
        self.open_streams += 1
        try:
            yield woken
        finally:
            self.open_streams -= 1
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
            self.subscribed.set()
            self._wake_all()  # signals may have been missed while not subscribed
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                if message is not None and message["type"] == "pmessage":
                    self.wake(decode(message["data"]))
        finally:
            self.subscribed.clear()
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
        claims = _ticket_claims(app, ticket)
    except Unauthorized:
        fresh = await apps.reloaded(app)  # issued by a process that read a newer secret?
        if fresh is None:
            raise
        app, claims = fresh, _ticket_claims(fresh, ticket)
    jti, contact_id = claims["jti"], claims["sub"]
    if not isinstance(jti, str) or not isinstance(contact_id, str) or not contact_id:
        raise Unauthorized("invalid stream ticket")
    if not await redis.set(f"ph:ticket:{jti}", 1, nx=True, ex=TICKET_SECONDS * 2):
        raise Unauthorized("stream ticket already used: ask for a new one")
    return Device(app, contact_id)


def _ticket_claims(app: App, ticket: str) -> dict[str, Any]:
    """The claims of a ticket signed with one of the app's secrets (during a rotation, a
    ticket issued with the previous one still opens its stream), or Unauthorized."""
    problem: jwt.PyJWTError | None = None
    for secret, _ in app.secrets(time.time()):
        try:
            claims: dict[str, Any] = jwt.decode(
                ticket, secret, algorithms=["HS256"], audience=TICKET_AUDIENCE,
                options={"require": ["exp", "sub", "jti"]},
            )  # fmt: skip
            return claims
        except jwt.InvalidSignatureError as exc:
            problem = exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid stream ticket: {exc}") from exc
    raise Unauthorized(f"invalid stream ticket: {problem}")


# The badges of many contacts of one app in one query (UnreadCounts): the unread counts
# of inbox.UNREAD_COUNTS, per contact and category.
_UNREAD_COUNTS = f"""
SELECT e.contact_id, c.category, count(*) AS unread
  FROM inbox_entries e LEFT JOIN contents c ON c.id = e.content_id
 WHERE e.contact_id = ANY($1::text[]) AND e.kind = 'inbox' AND $2 = ANY(e.app_keys)
   AND e.deleted_at IS NULL AND e.evicted_at IS NULL AND {UNREAD}
   AND (e.expires_at IS NULL OR e.expires_at > now())
 GROUP BY e.contact_id, c.category ORDER BY c.category NULLS LAST
"""
Badge = dict[str, Any]


class UnreadCounts:
    """Unread counts asked for in one turn of the event loop, read in one query per app:
    a batch's signal wakes up to a thousand streams at once, and they share a query
    instead of taking a pool connection each."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._asked: dict[str, dict[str, list[asyncio.Future[Badge]]]] = {}
        self._reading: set[asyncio.Task[None]] = set()

    async def get(self, contact_id: str, app_key: str) -> Badge:
        """``{"unreadCount": n, "byCategory": [{"category", "unread"}, ...]}``"""
        loop = asyncio.get_running_loop()
        if not self._asked:
            loop.call_soon(self._flush)
        answer: asyncio.Future[Badge] = loop.create_future()
        self._asked.setdefault(app_key, {}).setdefault(contact_id, []).append(answer)
        return await answer

    def _flush(self) -> None:
        asked, self._asked = self._asked, {}
        for app_key, contacts in asked.items():
            task = asyncio.ensure_future(self._read(app_key, contacts))
            self._reading.add(task)
            task.add_done_callback(self._reading.discard)

    async def _read(self, app_key: str, asked: dict[str, list[asyncio.Future[Badge]]]) -> None:
        try:
            rows = await self.pool.fetch(_UNREAD_COUNTS, list(asked), app_key)
        except Exception as exc:  # every reader of the batch fails as its own query would
            for answers in asked.values():
                for answer in answers:
                    if not answer.done():
                        answer.set_exception(exc)
            return
        badges: dict[str, Badge] = {c: {"unreadCount": 0, "byCategory": []} for c in asked}
        for row in rows:
            badge = badges[row["contact_id"]]
            badge["unreadCount"] += row["unread"]
            badge["byCategory"].append({"category": row["category"], "unread": row["unread"]})
        for contact_id, answers in asked.items():
            for answer in answers:
                if not answer.done():
                    answer.set_result(badges[contact_id])


class Stream:
    """One device's stream, served as raw ASGI: the first event is read before the answer
    starts (a dependency down is a 503, not a broken stream), then the stream holds one
    task (the server's) and one watcher of the client leaving; nothing else per stream."""

    def __init__(self, state: Any, device: Device, last_event_id: str | None) -> None:
        self.state, self.device, self.sent = state, device, last_event_id

    async def first(self) -> bytes:
        return b"retry: 3000\n\n" + await self.changed()

    async def serve(self, first: bytes, receive: Receive, send: Send, cors: bool) -> None:
        headers = _CORS_HEADERS if cors else _HEADERS
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": first, "more_body": True})
        hub: Hub = self.state.stream_hub
        left = False
        with hub.listening(self.device.contact_id) as woken:
            gone = asyncio.ensure_future(_left(receive))
            gone.add_done_callback(lambda _: woken.set())
            try:
                chunk = await self.changed()  # anything between the first read and now
                while not gone.done() and not hub.closing:
                    if chunk:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    chunk = await self._next(woken)
            except EXPECTED as exc:  # Redis or PostgreSQL gone: the client reconnects
                log.warning("stream ended: %s", type(exc).__name__)
            finally:
                left = gone.done()
                gone.cancel()
        if not left:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _next(self, woken: asyncio.Event) -> bytes:
        """What to send next: an event once woken and changed, else a heartbeat."""
        try:
            await asyncio.wait_for(woken.wait(), HEARTBEAT_SECONDS)
        except TimeoutError:
            woken.clear()
            return b": heartbeat\n\n" + await self.changed()
        woken.clear()
        return await self.changed()

    async def changed(self) -> bytes:
        """An event if the version moved since the last one sent, else nothing."""
        contact, app_key = self.device.contact_id, self.device.app.app_key
        version = await phone_home.current_version(self.state.versions, contact)
        if version == self.sent:
            return b""
        badge = await self.state.unread_counts.get(contact, app_key)
        self.sent = version
        data = orjson.dumps({"version": version, "inboxUnreadCount": badge["unreadCount"],
                             "unreadByCategory": badge["byCategory"]})  # fmt: skip
        return b"id: " + version.encode() + b"\nevent: changed\ndata: " + data + b"\n\n"


_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
    (b"vary", b"Origin"),
]
_CORS_HEADERS = [*_HEADERS, (b"access-control-allow-origin", b"*")]


async def _left(receive: Receive) -> None:
    """Returns when the client has gone (a GET has no body to read: the next message is
    the disconnect)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def handle(state: Any, scope: Scope, receive: Receive, send: Send) -> None:
    """``GET /v1/stream``, answered before FastAPI (a stream through its middleware and
    StreamingResponse holds three tasks and a dozen frames for as long as it is open)."""
    headers: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name, value)
    cors = b"origin" in headers
    ticket = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("ticket", [None])[-1]
    try:
        device = await _device(state, headers, ticket)
        if state.stream_hub.open_streams >= state.max_streams:
            await _refuse(send, 503, "too many open streams here", cors, {"retry-after": "5"})
            return
        last = headers.get(b"last-event-id", b"").decode("latin-1")[:64] or None
        live = Stream(state, device, last)
        first = await live.first()
    except Unauthorized as exc:
        await _refuse(send, 401, str(exc), cors, {"www-authenticate": "Bearer"})
        return
    except EXPECTED as exc:
        answer = answer_for(exc, "GET /v1/stream")
        await _refuse(send, answer.status, answer.message, cors, answer.headers)
        return
    OPEN_STREAMS.inc()
    try:
        await live.serve(first, receive, send, cors)
    finally:
        OPEN_STREAMS.dec()


async def _device(state: Any, headers: dict[bytes, bytes], ticket: str | None) -> Device:
    if ticket is not None:
        return await redeem_ticket(state.apps, state.redis, ticket)
    app_key, authorization = headers.get(b"x-app-key"), headers.get(b"authorization")
    return await verify(
        state.apps,
        app_key.decode("latin-1") if app_key is not None else None,
        authorization.decode("latin-1") if authorization is not None else None,
    )


async def _refuse(send: Send, status: int, message: str, cors: bool, extra: dict[str, str]) -> None:
    body = orjson.dumps({"detail": message})
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
    headers += [(b"vary", b"Origin")] + ([(b"access-control-allow-origin", b"*")] if cors else [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
