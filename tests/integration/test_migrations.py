"""Migrations apply cleanly to an empty database, and a second run applies nothing."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from shared.db import migrate, migration_files
from shared.settings import CommonSettings


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def test_migrations_apply_to_an_empty_database(settings: CommonSettings) -> None:
    name = f"pigeonhole_migrate_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(settings.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        dsn = _with_database(settings.database_url, name)
        applied = await migrate(dsn)
        assert applied == [path.name for _, path in migration_files()]
        assert await migrate(dsn) == []
        conn = await asyncpg.connect(dsn)
        try:
            tables = {
                r["tablename"]
                for r in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                )
            }
        finally:
            await conn.close()
        assert {
            "contents",
            "contacts",
            "apps",
            "send_jobs",
            "inbox_entries",
            "api_tokens",
        } <= tables
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
