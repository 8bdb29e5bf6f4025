"""Content use cases: publish in-app content and App Inbox messages, checking what the
model cannot (formulas, merge tags, URLs), and the view of stored content."""

from __future__ import annotations

from typing import Any

import asyncpg

from services.publisher.apps import repository as apps_repository
from services.publisher.content import repository, url_policy
from services.publisher.content.models import CreateInAppContent, CreateInboxMessage
from services.publisher.errors import ApiError, field_error
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
    body: dict[str, Any] = {"payload": payload}
    if command.locales:
        body["locales"] = {k: v.model_dump(exclude_none=True) for k, v in command.locales.items()}
    if command.priority is not None:
        body["priority"] = command.priority
    await check_urls(pool, body)
    check_personalization(body, command.personalizationFormulas)
    return await repository.insert_content(
        pool,
        "inapp",
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


INBOX_FIELDS = ("title", "text", "url", "openInNewTab", "image", "logo")


async def check_urls(pool: asyncpg.Pool, body: dict[str, Any]) -> None:
    """400 naming each URL field the policy refuses (``url_policy.py``), or whose
    deep-link scheme no app declares."""
    refused, deep_links = url_policy.check(body)
    if deep_links:
        declared = await apps_repository.declared_deep_link_schemes(pool)
        for path, scheme in deep_links.items():
            if scheme not in declared:
                refused[path] = (
                    f"must be an http(s) URL or a deep link of a scheme an app declares; "
                    f"no app declares {scheme}: (deepLinkSchemes on POST /apps)"
                )
    if refused:
        raise ApiError(400, fields=refused)


async def publish_inbox_message(pool: asyncpg.Pool, command: CreateInboxMessage) -> str:
    body = command.model_dump(include={*INBOX_FIELDS, "locales"}, exclude_none=True)
    if not body.get("locales"):
        body.pop("locales", None)
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
