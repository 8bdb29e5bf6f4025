"""Request signatures and target-URL safety of outbound webhooks (docs/webhooks.md).

``X-Pigeonhole-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``:
the receiver recomputes it over the raw body and refuses an old ``t`` (replays).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import socket
import time
from urllib.parse import urlsplit

SIGNATURE_HEADER = "X-Pigeonhole-Signature"
TOLERANCE_SECONDS = 300


def sign(secret: str, body: bytes, at: int | None = None) -> str:
    t = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: bytes, header: str, *, now: float | None = None) -> bool:
    """What a receiver does: the signature matches and is at most 5 minutes old."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > TOLERANCE_SECONDS:
        return False
    expected = sign(secret, body, t).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def url_problem(url: str, *, allow_private: bool) -> str | None:
    """Why ``url`` cannot be a webhook target (None: it can), without resolving names."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as exc:
        return f"not a URL: {exc}"
    if parts.scheme not in ("http", "https") or not host:
        return "must be an http(s) URL with a host"
    if parts.username or parts.password:
        return "must not carry credentials"
    if allow_private:
        return None
    if host.rstrip(".").lower() == "localhost" or host.lower().endswith(".localhost"):
        return "must not point at this host (loopback)"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None  # a name: checked again once resolved, before each request
    return None if address.is_global else "must not point at a private or loopback address"


async def resolves_private(url: str) -> bool:
    """Whether the URL's host resolves to any non-public address (SSRF guard at send)."""
    host = urlsplit(url).hostname or ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False  # the request fails on its own and is retried
    return any(not ipaddress.ip_address(info[4][0]).is_global for info in infos)
