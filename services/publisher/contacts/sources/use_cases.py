"""Contact-source use cases: check the body (exactly one of a list or a query, a query that
compiles), write through ``repository.py``, and describe a source with live counts."""

from __future__ import annotations

from typing import Any

import asyncpg

from services.publisher.contacts.sources import repository
from services.publisher.contacts.sources.models import CreateContactSource
from services.publisher.errors import ApiError
from shared.audience import QueryError, Source, compile_query


async def create_contact_source(pool: asyncpg.Pool, command: CreateContactSource) -> int:
    if (command.contactIds is None) == (command.query is None):
        message = "give exactly one of contactIds (a static list) or query"
        raise ApiError(400, fields={"contactIds": message, "query": message})
    if command.query is not None:
        try:
            compile_query(command.query)
        except QueryError as exc:
            raise ApiError(400, fields={exc.path: exc.message}) from exc
        return await repository.insert_query_source(pool, command.name, command.query)
    assert command.contactIds is not None
    return await repository.insert_list_source(
        pool, command.name, list(dict.fromkeys(command.contactIds))
    )


def source_of(row: asyncpg.Record) -> Source:
    return Source(id=row["id"], kind=row["kind"], query=row["query"])


async def get_contact_source(pool: asyncpg.Pool, source_id: int) -> asyncpg.Record:
    row = await repository.get_source(pool, source_id)
    if row is None:
        raise ApiError(404, f"no contact source with id {source_id}")
    return row


async def contact_source_view(pool: asyncpg.Pool, row: asyncpg.Record) -> dict[str, Any]:
    """``memberCount`` counts contacts that exist now; a list also reports ``listedCount``,
    the distinct ids it names, some of which may not be contacts yet."""
    view: dict[str, Any] = {
        "id": row["id"],
        "name": row["name"],
        "kind": row["kind"],
        "memberCount": await repository.count_members(pool, source_of(row)),
        "createdAt": row["created_at"].isoformat(),
    }
    if row["kind"] == "list":
        view["listedCount"] = await repository.count_listed(pool, row["id"])
    else:
        view["query"] = row["query"]
    return view
