"""Batch contact import: an NDJSON body of any size, parsed line by line as it streams in
and written in chunks inside one transaction, so memory stays flat and a bad line leaves
the database as it was."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
from pydantic import ValidationError

from services.publisher.contacts import repository
from services.publisher.contacts.models import ContactLine
from services.publisher.contacts.use_cases import too_large
from services.publisher.errors import ApiError

CHUNK = 2000
MAX_LINE_BYTES = 256 * 1024


async def lines(stream: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, bytes]]:
    """(line number, line) for each non-blank line of the streamed body."""
    buffer, number = b"", 0
    async for chunk in stream:
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            number += 1
            if line.strip():
                yield number, line
        if len(buffer) > MAX_LINE_BYTES:
            raise ApiError(400, f"line {number + 1} is longer than {MAX_LINE_BYTES} bytes")
    if buffer.strip():
        yield number + 1, buffer


def _bad_line(number: int, exc: ValidationError) -> ApiError:
    fields = {}
    for err in exc.errors():
        path = ".".join(str(p) for p in err.get("loc", ())) or "line"
        fields[f"line {number}.{path}" if path != "line" else f"line {number}"] = str(err["msg"])
    return ApiError(
        400, f"line {number} is not a valid contact; nothing was imported", fields=fields
    )


async def import_contacts(pool: asyncpg.Pool, stream: AsyncIterator[bytes]) -> int:
    """Upsert every contact of the body; return how many lines were imported."""
    imported, first, number = 0, 1, 0
    async with pool.acquire() as conn, conn.transaction():
        chunk: list[repository.ContactChange] = []
        async for number, line in lines(stream):
            try:
                contact = ContactLine.model_validate_json(line)
            except ValidationError as exc:
                raise _bad_line(number, exc) from exc
            chunk.append((contact.contactId, contact.attributes, contact.subscriptions))
            if len(chunk) >= CHUNK:
                await _write(conn, chunk, first, number)
                imported, first, chunk = imported + len(chunk), number + 1, []
        await _write(conn, chunk, first, number)
        imported += len(chunk)
    return imported


async def _write(
    conn: repository.Executor, chunk: list[repository.ContactChange], first: int, last: int
) -> None:
    try:
        await repository.upsert_contacts(conn, chunk)
    except asyncpg.CheckViolationError as exc:
        raise too_large(exc, f"lines {first}..{last}.attributes") from exc
