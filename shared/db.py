"""PostgreSQL pool helper and the migration runner.

Migrations are numbered SQL files in ``shared/migrations`` (``0001_initial.sql`` …),
applied in order, each in its own transaction, under an advisory lock so that several
processes starting at once apply each file exactly once.

``schema_migrations`` keeps each applied file's SHA-256 (of its text, CRLF line endings read
as LF, so a checkout's line endings do not matter). A file changed after it was
applied is refused before anything is applied (``MigrationChanged`` names it): the
database already holds the old version, so the change belongs in a new migration. A
database migrated before checksums were kept gets its column and the checksums of the
files as they are on its next run.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import asyncpg
import orjson

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK_KEY = 0x50494745  # "PIGE": any constant shared by every migrating process


_JSONB_VERSION = b"\x01"  # jsonb's binary wire format: a version byte, then the text


def _jsonb_decode(data: bytes) -> object:
    return orjson.loads(memoryview(data)[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    """JSON and jsonb in PostgreSQL's binary format, encoded and decoded by orjson: no str
    round trip, and COPY (binary only) can write jsonb columns."""
    await conn.set_type_codec(
        "json", encoder=orjson.dumps, decoder=orjson.loads, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: _JSONB_VERSION + orjson.dumps(v),
        decoder=_jsonb_decode,
        schema="pg_catalog",
        format="binary",
    )


class PooledConnection(asyncpg.Connection):
    """A pool connection returned without asyncpg's reset query (``RESET ALL``, ``UNLISTEN
    *``, advisory unlocks: a round trip per release, on every query made through the
    pool). Pigeonhole sets no session state on pooled connections — no ``SET``, ``LISTEN``
    or session advisory lock (the migration lock is taken and released on one connection
    of its own) — so there is nothing to reset; an open transaction is still rolled back."""

    def get_reset_query(self) -> str:
        return ""


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    server_settings: dict[str, str] | None = None,
) -> asyncpg.Pool:
    """``server_settings``: PostgreSQL settings for every connection of the pool, given when
    it connects (so the same for every use, nothing to reset)."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        connection_class=PooledConnection,
        server_settings=server_settings,
    )
    assert pool is not None
    return pool


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[tuple[int, Path]]:
    found = []
    for path in sorted(directory.iterdir()):
        match = _MIGRATION_NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    versions = [v for v, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number in {directory}")
    return found


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


class MigrationChanged(RuntimeError):
    """An applied migration's file no longer matches what was applied."""


def checksum(sql: str) -> str:
    """The SHA-256 of a migration's text as ``_read`` reads it (CRLF read as LF)."""
    return hashlib.sha256(sql.encode()).hexdigest()


async def _bootstrap(conn: asyncpg.Connection) -> dict[int, str | None]:
    """The migrations table (with its checksum column, also on databases from before
    checksums); the applied versions and their checksums."""
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               version int PRIMARY KEY,
               name text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now(),
               checksum text)"""
    )
    await conn.execute("ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text")
    rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
    return {r["version"]: r["checksum"] for r in rows}


async def _verify_applied(
    conn: asyncpg.Connection, applied: dict[int, str | None], files: list[tuple[int, Path]]
) -> None:
    """Refuse changed applied files; record the checksums an older runner did not keep."""
    changed = []
    for version, path in files:
        recorded, now = applied.get(version), checksum(_read(path))
        if recorded is not None and recorded != now:
            changed.append(f"{path.name} (applied as sha256 {recorded[:12]}…, now {now[:12]}…)")
    if changed:
        raise MigrationChanged(
            f"applied migration(s) changed since they were applied: {', '.join(changed)}."
            " Restore the file(s) and put the change in a new migration."
        )
    for version, path in files:
        if version in applied and applied[version] is None:
            await conn.execute(
                "UPDATE schema_migrations SET checksum = $2 WHERE version = $1",
                version,
                checksum(_read(path)),
            )
            log.info("migration checksum recorded", extra={"migration": path.name})


async def migrate(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every migration not yet applied; return the names applied now.

    Raises MigrationChanged, having applied nothing, if an applied file was changed."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    applied_now: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        files = migration_files(directory)
        applied = await _bootstrap(conn)
        await _verify_applied(conn, applied, files)
        for version, path in files:
            if version in applied:
                continue
            sql = _read(path)
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    version,
                    path.name,
                    checksum(sql),
                )
            applied_now.append(path.name)
            log.info("migration applied", extra={"migration": path.name})
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
        await conn.close()
    return applied_now
