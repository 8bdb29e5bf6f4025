"""Publisher use cases: each takes parsed input and the pool, checks what the model
cannot (references, formulas, merge tags), and writes through the repository."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import asyncpg

from services.publisher import repository
from services.publisher.content import url_policy
from services.publisher.errors import ApiError, field_error
from services.publisher.models import (
    CreateApp,
    CreateInAppContent,
    CreateInboxMessage,
    CreateSend,
    SendContent,
    UpdateApp,
    UpsertContact,
)
from services.publisher.sends import idempotency, send_limits
from services.publisher.sends.idempotency import IdempotentRequest
from shared.events import SendOptions
from shared.personalization import FormulaError, MergeTagError, compile_formula, find_merge_tags


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
    await check_urls(pool, {"payload": payload})
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


async def check_urls(pool: asyncpg.Pool, body: dict[str, Any]) -> None:
    """400 naming each URL field the policy refuses (``url_policy.py``), or whose
    deep-link scheme no app declares."""
    refused, deep_links = url_policy.check(body)
    if deep_links:
        declared = await repository.declared_deep_link_schemes(pool)
        for path, scheme in deep_links.items():
            if scheme not in declared:
                refused[path] = (
                    f"must be an http(s) URL or a deep link of a scheme an app declares; "
                    f"no app declares {scheme}: (deepLinkSchemes on POST /apps)"
                )
    if refused:
        raise ApiError(400, fields=refused)


async def publish_inbox_message(pool: asyncpg.Pool, command: CreateInboxMessage) -> str:
    body = command.model_dump(include=set(INBOX_FIELDS), exclude_none=True)
    await check_urls(pool, body)
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
    # field path -> deep-link scheme: every app the send names must declare it
    deep_links: dict[str, str] = field(default_factory=dict)


async def resolve_message(pool: asyncpg.Pool, content: SendContent) -> ResolvedMessage:
    """The content a send names, checked to exist with the right kind."""
    if (content.inAppMessage is None) == (content.inboxMessage is None):
        raise field_error("content", "give exactly one of inAppMessage or inboxMessage")
    if content.inAppMessage is not None:
        where, message = "content.inAppMessage.inAppContentId", content.inAppMessage
        resolved = ResolvedMessage(
            "inapp", message.inAppContentId, message.maxViews, message.expirationDate
        )
    else:
        assert content.inboxMessage is not None
        where, inbox = "content.inboxMessage.inboxContentId", content.inboxMessage
        resolved = ResolvedMessage("inbox", inbox.inboxContentId, None, inbox.expirationDate)
    row = await repository.get_content(pool, resolved.content_id)
    if row is None or row["kind"] != resolved.kind:
        raise field_error(where, f"no {resolved.kind} content with id {resolved.content_id!r}")
    return replace(resolved, deep_links=url_policy.check(dict(row["body"]))[1])


async def check_app_keys(
    pool: asyncpg.Pool, app_keys: list[str], where: str, message: ResolvedMessage | None = None
) -> list[str]:
    """The named apps, once each; 400 naming ``where`` if one is unknown, or if one does
    not declare a deep-link scheme the content uses."""
    unique = list(dict.fromkeys(app_keys))
    schemes = await repository.app_deep_link_schemes(pool, unique)
    missing = sorted(set(unique) - set(schemes))
    if missing:
        raise field_error(where, f"unknown app key(s): {', '.join(missing)}")
    for path, scheme in (message.deep_links if message else {}).items():
        lacking = [key for key in unique if scheme not in schemes[key]]
        if lacking:
            raise field_error(
                where,
                f"app(s) {', '.join(lacking)} do not declare the deep-link scheme {scheme}: "
                f"used by the content's {path} (deepLinkSchemes)",
            )
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
    request: IdempotentRequest | None = None,
) -> int:
    """A direct send job; ``request`` makes it idempotent (``idempotency.py``)."""
    if (replayed := await idempotency.replayed_job(pool, request)) is not None:
        return replayed
    message = await resolve_message(pool, command.content)
    app_keys = await check_app_keys(pool, command.channelQualifiers, "channelQualifiers", message)
    options = send_options(
        message, command.personalizationDefaults, using_app_frequency=using_app_frequency
    )
    send_limits.check_fits(
        message.content_id, message.kind, app_keys, options,
        [(c.contactId, c.personalization) for c in command.contacts],
    )  # fmt: skip
    # Each contact once per send: a contact named twice keeps its last personalization.
    recipients = {c.contactId: c.personalization for c in command.contacts}
    job_id = await repository.create_direct_send_job(
        pool, content_id=message.content_id, app_keys=app_keys, options=options,
        recipients=recipients,
        request=(request.request_id, request.body_hash) if request else None,
    )  # fmt: skip
    return job_id if job_id is not None else await idempotency.job_of_taken_key(pool, request)


async def create_app(pool: asyncpg.Pool, command: CreateApp) -> dict[str, Any]:
    row = {
        "app_key": secrets.token_urlsafe(12),
        "name": command.name,
        "secret": secrets.token_urlsafe(32),
        "frequency_limits": command.frequencyLimits.model_dump(exclude_none=True),
        "next_sync_after_seconds": command.nextSyncAfterSeconds,
        "deep_link_schemes": list(dict.fromkeys(s.lower() for s in command.deepLinkSchemes)),
    }
    await repository.insert_app(pool, row)
    return app_view(row, include_secret=True)


async def update_app(pool: asyncpg.Pool, app_key: str, command: UpdateApp) -> dict[str, Any]:
    """Change what an app declares. A scheme dropped here makes later sends of content that
    links to it to this app a 400; what was delivered stays as it is."""
    row = await repository.get_app(pool, app_key)
    if row is None:
        raise ApiError(404, f"no app with key {app_key!r}")
    if command.deepLinkSchemes is not None:
        schemes = list(dict.fromkeys(command.deepLinkSchemes))
        row = await repository.set_deep_link_schemes(pool, app_key, schemes)
    return app_view(row, include_secret=False)


def app_view(row: dict[str, Any] | asyncpg.Record, *, include_secret: bool) -> dict[str, Any]:
    view = {
        "appKey": row["app_key"],
        "name": row["name"],
        "frequencyLimits": row["frequency_limits"],
        "nextSyncAfterSeconds": row["next_sync_after_seconds"],
        "deepLinkSchemes": list(row["deep_link_schemes"]),
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
