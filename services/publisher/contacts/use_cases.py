"""Contact use cases: create or merge one contact, and its view."""

from __future__ import annotations

from typing import Any

import asyncpg

from services.publisher.contacts import repository
from services.publisher.contacts.models import UpsertContact


async def upsert_contact(
    pool: asyncpg.Pool, contact_id: str, command: UpsertContact
) -> tuple[dict[str, Any], bool]:
    row = await repository.upsert_contact(
        pool, contact_id, command.attributes, command.subscriptions
    )
    return contact_view(row), bool(row["created"])


def contact_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "contactId": row["contact_id"],
        "attributes": row["attributes"],
        "subscriptions": row["subscriptions"],
        "updatedAt": row["updated_at"].isoformat(),
    }
