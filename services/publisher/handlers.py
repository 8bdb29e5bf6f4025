"""Publisher use cases: each takes parsed input and the pool, checks what the model
cannot (references, formulas, merge tags), and writes through the repository."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.publisher import repository
from services.publisher.errors import ApiError, field_error
from services.publisher.models import (
    CreateApp,
    CreateInAppContent,
    CreateInboxMessage,
    CreateSend,
    SendContent,
    UpsertContact,
)
from shared.events import SendOptions
from shared.personalization import FormulaError, MergeTagError, compile_formula, find_merge_tags
from shared.personalization.urls import is_safe_url, starts_with_merge_tag


def check_personalization(body: dict[str, Any], formulas: dict[str, str]) -> None:
    """Reject, naming the field, a formula that does not parse or a malformed merge tag."""
    errors: dict[str, str] = {}
    for name, source in formulas.items():
        try:
            compile_formula(source)
        except FormulaError as exc:
            errors[f"personalizationFormulas.{name}"] = f"formula does not parse: {exc}"
    for path, text in _strings(body, ""):
        try:
            find_merge_tags(text)
        except MergeTagError as exc:
            errors[path] = str(exc)
    if errors:
        raise ApiError(400, fields=errors)


def _strings(tree: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(tree, str):
        return [(path, tree)]
    if isinstance(tree, dict):
        return [
            item
            for key, value in tree.items()
            for item in _strings(value, f"{path}.{key}" if path else str(key))
        ]
    if isinstance(tree, list):
        return [item for i, v in enumerate(tree) for item in _strings(v, f"{path}.{i}")]
    return []


async def publish_inapp_content(pool: asyncpg.Pool, command: CreateInAppContent) -> str:
    payload = command.payload.model_dump(exclude_none=True)
    if not payload:
        raise field_error("payload", "give at least one platform: gcm, apns or web")
    check_personalization({"payload": payload}, command.personalizationFormulas)
    return await repository.insert_content(
        pool,
        "inapp",
        {
            "name": command.name,
            "body": {"payload": payload},
            "personalization_defaults": command.personalizationDefaults,
            "personalization_formulas": command.personalizationFormulas,
            "category": command.category,
            "tags": command.tags,
            "ttl_seconds": command.ttlSeconds,
        },
    )


INBOX_FIELDS = ("title", "text", "url", "openInNewTab", "image", "logo")
INBOX_URL_FIELDS = ("url", "image", "logo")


async def publish_inbox_message(pool: asyncpg.Pool, command: CreateInboxMessage) -> str:
    body = command.model_dump(include=set(INBOX_FIELDS), exclude_none=True)
    unsafe = {
        field: "must be an http(s) URL, or start with a merge tag such as %%Landing_Page%%"
        for field in INBOX_URL_FIELDS
        if (value := body.get(field)) and not (is_safe_url(value) or starts_with_merge_tag(value))
    }
    if unsafe:
        raise ApiError(400, fields=unsafe)
    check_personalization(body, command.personalizationFormulas)
    return await repository.insert_content(
        pool,
        "inbox",
        {
            "name": command.name,
            "body": body,
            "personalization_defaults": command.personalizationDefaults,
            "personalization_formulas": command.personalizationFormulas,
            "category": command.category,
            "tags": command.tags,
            "ttl_seconds": command.ttlSeconds,
        },
    )


def content_view(row: asyncpg.Record) -> dict[str, Any]:
    body: dict[str, Any] = dict(row["body"])
    view = {
        "id": row["id"],
        **body,
        "personalizationDefaults": row["personalization_defaults"],
        "personalizationFormulas": row["personalization_formulas"],
        "tags": row["tags"],
        "createdAt": row["created_at"].isoformat(),
    }
    for key, column in (("name", "name"), ("category", "category"), ("ttlSeconds", "ttl_seconds")):
        if row[column] is not None:
            view[key] = row[column]
    return view


@dataclass(frozen=True)
class ResolvedMessage:
    kind: str
    content_id: str
    max_views: int | None
    expiration_date: datetime | None


async def resolve_message(pool: asyncpg.Pool, content: SendContent) -> ResolvedMessage:
    """The content a send names, checked to exist with the right kind."""
    if (content.inAppMessage is None) == (content.inboxMessage is None):
        raise field_error("content", "give exactly one of inAppMessage or inboxMessage")
    if content.inAppMessage is not None:
        field, message = "content.inAppMessage.inAppContentId", content.inAppMessage
        resolved = ResolvedMessage(
            "inapp", message.inAppContentId, message.maxViews, message.expirationDate
        )
    else:
        assert content.inboxMessage is not None
        field, inbox = "content.inboxMessage.inboxContentId", content.inboxMessage
        resolved = ResolvedMessage("inbox", inbox.inboxContentId, None, inbox.expirationDate)
    row = await repository.get_content(pool, resolved.content_id)
    if row is None or row["kind"] != resolved.kind:
        raise field_error(field, f"no {resolved.kind} content with id {resolved.content_id!r}")
    return resolved


async def check_app_keys(pool: asyncpg.Pool, app_keys: list[str], field: str) -> list[str]:
    unique = list(dict.fromkeys(app_keys))
    missing = sorted(set(unique) - await repository.existing_app_keys(pool, unique))
    if missing:
        raise field_error(field, f"unknown app key(s): {', '.join(missing)}")
    return unique


def send_options(
    message: ResolvedMessage,
    defaults: dict[str, Any],
    *,
    using_app_frequency: bool,
    is_test: bool = False,
) -> dict[str, Any]:
    options = SendOptions(
        max_views=message.max_views,
        expiration_date=message.expiration_date,
        personalization_defaults=defaults,
        using_app_frequency=using_app_frequency,
        is_test=is_test,
    )
    return options.model_dump(mode="json")


async def create_send(
    pool: asyncpg.Pool,
    command: CreateSend,
    *,
    using_app_frequency: bool,
    request_id: str | None = None,
) -> int:
    message = await resolve_message(pool, command.content)
    app_keys = await check_app_keys(pool, command.channelQualifiers, "channelQualifiers")
    # Each contact once per send: a contact named twice keeps its last personalization.
    recipients = {c.contactId: c.personalization for c in command.contacts}
    return await repository.create_direct_send_job(
        pool,
        content_id=message.content_id,
        app_keys=app_keys,
        options=send_options(
            message, command.personalizationDefaults, using_app_frequency=using_app_frequency
        ),
        recipients=recipients,
        request_id=request_id,
    )


async def create_app(pool: asyncpg.Pool, command: CreateApp) -> dict[str, Any]:
    row = {
        "app_key": secrets.token_urlsafe(12),
        "name": command.name,
        "secret": secrets.token_urlsafe(32),
        "frequency_limits": command.frequencyLimits.model_dump(exclude_none=True),
        "next_sync_after_seconds": command.nextSyncAfterSeconds,
    }
    await repository.insert_app(pool, row)
    return app_view(row, include_secret=True)


def app_view(row: dict[str, Any] | asyncpg.Record, *, include_secret: bool) -> dict[str, Any]:
    view = {
        "appKey": row["app_key"],
        "name": row["name"],
        "frequencyLimits": row["frequency_limits"],
        "nextSyncAfterSeconds": row["next_sync_after_seconds"],
    }
    if include_secret:
        view["appSecret"] = row["secret"]
    return view


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
