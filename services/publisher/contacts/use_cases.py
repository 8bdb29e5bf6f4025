"""Contact use cases: create or merge one contact, and its view."""

from __future__ import annotations

from typing import Any

import asyncpg

from services.publisher import limits
from services.publisher.contacts import repository
from services.publisher.contacts.models import UpsertContact
from services.publisher.errors import ApiError


async def upsert_contact(
    pool: asyncpg.Pool, contact_id: str, command: UpsertContact
) -> tuple[dict[str, Any], bool]:
    try:
        row = await repository.upsert_contact(
            pool, contact_id, command.attributes, command.subscriptions
        )
    except asyncpg.CheckViolationError as exc:
        raise too_large(exc) from exc
    return contact_view(row), bool(row["created"])


def too_large(exc: asyncpg.CheckViolationError, where: str = "attributes") -> Exception:
    """The ApiError for a merge that would grow a contact's attributes past their bound;
    any other check violation is not the caller's to explain, so it is returned as is."""
    if exc.constraint_name != limits.STORED_ATTRIBUTES_CONSTRAINT:
        return exc
    return ApiError(
        413,
        fields={
            where: f"merged with the stored attributes, the document would exceed "
            f"{limits.MAX_STORED_ATTRIBUTES_BYTES // 1024} KiB as stored"
        },
    )


def contact_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "contactId": row["contact_id"],
        "attributes": row["attributes"],
        "subscriptions": row["subscriptions"],
        "updatedAt": row["updated_at"].isoformat(),
    }
