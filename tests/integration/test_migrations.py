"""Migrations apply cleanly to an empty database, a second run applies nothing, and a
migration changed after it was applied is refused (each test in a throwaway database of
the real PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from shared.db import MigrationChanged, checksum, migrate, migration_files
from shared.settings import CommonSettings


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture
async def empty_database(settings: CommonSettings) -> AsyncIterator[str]:
    """The DSN of a new, empty database, dropped afterwards."""
    name = f"pigeonhole_migrate_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(settings.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(settings.database_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _query(dsn: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


def _write(directory: Path, name: str, sql: str) -> None:
    (directory / name).write_text(sql, encoding="utf-8")


async def test_migrations_apply_to_an_empty_database(empty_database: str) -> None:
    applied = await migrate(empty_database)
    files = migration_files()
    assert applied == [path.name for _, path in files]
    assert await migrate(empty_database) == []
    tables = {
        r["tablename"]
        for r in await _query(
            empty_database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
    }
    assert {"contents", "contacts", "apps", "send_jobs", "inbox_entries", "api_tokens"} <= tables
    recorded = {
        r["name"]: r["checksum"]
        for r in await _query(empty_database, "SELECT name, checksum FROM schema_migrations")
    }
    assert recorded == {path.name: checksum(path.read_text()) for _, path in files}


async def test_a_changed_applied_migration_is_refused_and_nothing_new_applies(
    empty_database: str, tmp_path: Path
) -> None:
    _write(tmp_path, "0001_notes.sql", "CREATE TABLE notes (id int PRIMARY KEY);")
    assert await migrate(empty_database, tmp_path) == ["0001_notes.sql"]
    _write(tmp_path, "0001_notes.sql", "CREATE TABLE notes (id bigint PRIMARY KEY);")
    _write(tmp_path, "0002_tags.sql", "CREATE TABLE tags (tag text PRIMARY KEY);")
    with pytest.raises(MigrationChanged, match=r"0001_notes\.sql") as refused:
        await migrate(empty_database, tmp_path)
    assert "0002" not in str(refused.value)
    assert [
        r["name"] for r in await _query(empty_database, "SELECT name FROM schema_migrations")
    ] == ["0001_notes.sql"]
    # restored, the new migration applies as before
    _write(tmp_path, "0001_notes.sql", "CREATE TABLE notes (id int PRIMARY KEY);")
    assert await migrate(empty_database, tmp_path) == ["0002_tags.sql"]


async def test_a_database_migrated_before_checksums_gets_them_instead_of_a_refusal(
    empty_database: str, tmp_path: Path
) -> None:
    _write(tmp_path, "0001_notes.sql", "CREATE TABLE notes (id int PRIMARY KEY);\r\n")
    await migrate(empty_database, tmp_path)
    await _query(empty_database, "ALTER TABLE schema_migrations DROP COLUMN checksum")  # as before
    _write(tmp_path, "0002_tags.sql", "CREATE TABLE tags (tag text PRIMARY KEY);")
    assert await migrate(empty_database, tmp_path) == ["0002_tags.sql"]
    rows = await _query(empty_database, "SELECT name, checksum FROM schema_migrations")
    assert {r["name"]: r["checksum"] for r in rows} == {
        name: checksum((tmp_path / name).read_text())
        for name in ("0001_notes.sql", "0002_tags.sql")
    }
    assert await migrate(empty_database, tmp_path) == []
    _write(tmp_path, "0001_notes.sql", "CREATE TABLE notes (id bigint PRIMARY KEY);")
    with pytest.raises(MigrationChanged, match=r"0001_notes\.sql"):
        await migrate(empty_database, tmp_path)


async def test_pigeonhole_db_migrate_exits_non_zero_naming_a_changed_migration(
    empty_database: str,
) -> None:
    await migrate(empty_database)
    await _query(
        empty_database, "UPDATE schema_migrations SET checksum = repeat('0', 64) WHERE version = 1"
    )
    done = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "pigeonhole"), "db", "migrate",
        env={**os.environ, "PIGEONHOLE_DATABASE_URL": empty_database},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(done.communicate(), 60)
    assert done.returncode != 0
    assert "0001_initial.sql" in output.decode()
