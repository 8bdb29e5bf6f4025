"""Uploaded images: JPEG or PNG, recognised by their bytes (never by name or header),
size-limited while the body streams in, stored in PostgreSQL and served by URL."""

from __future__ import annotations

import hashlib
import secrets
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from services.publisher.errors import ApiError

MAX_BYTES = 5 * 1024 * 1024
_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"


@dataclass(frozen=True)
class Image:
    content_type: str
    width: int | None
    height: int | None


def sniff(data: bytes) -> Image | None:
    """The image type and size read from the bytes, or None if not a JPEG/PNG."""
    if data.startswith(_PNG) and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return Image("image/png", width, height)
    if data.startswith(_JPEG) and data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return Image("image/jpeg", *_jpeg_size(data))
    return None


def _jpeg_size(data: bytes) -> tuple[int | None, int | None]:
    pos = 2
    while pos + 9 < len(data):
        if data[pos] != 0xFF:
            return None, None
        marker, length = data[pos + 1], struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    return None, None


async def read_limited(stream: AsyncIterator[bytes], limit: int = MAX_BYTES) -> bytes:
    """Read the body, refusing it as soon as it passes ``limit`` bytes."""
    chunks, size = [], 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the image is larger than {limit // (1024 * 1024)} MiB")
        chunks.append(chunk)
    return b"".join(chunks)


async def store(pool: asyncpg.Pool, data: bytes) -> tuple[str, Image]:
    if not data:
        raise ApiError(400, "the request body is empty: send the image bytes")
    image = sniff(data)
    if image is None:
        raise ApiError(415, "the upload is not a JPEG or PNG image (checked by its content)")
    media_id = secrets.token_urlsafe(12)
    await pool.execute(
        """INSERT INTO media (id, content_type, size_bytes, sha256, data, width, height)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        media_id, image.content_type, len(data), hashlib.sha256(data).digest(), data,
        image.width, image.height,
    )  # fmt: skip
    return media_id, image


async def load(pool: asyncpg.Pool, media_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT content_type, data FROM media WHERE id = $1", media_id)
