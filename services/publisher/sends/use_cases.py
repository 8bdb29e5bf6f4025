"""Send use cases: resolve the content and apps a send names, and create a direct send job."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import asyncpg

from services.publisher.apps import repository as apps_repository
from services.publisher.content import repository as content_repository
from services.publisher.content import url_policy
from services.publisher.errors import field_error
from services.publisher.sends import idempotency, repository, send_limits, split
from services.publisher.sends.idempotency import IdempotentRequest
from services.publisher.sends.models import CreateSend, SendContent
from shared.events import SendOptions, Variant


@dataclass(frozen=True)
class ResolvedMessage:
    kind: str
    content_id: str
    max_views: int | None
    expiration_date: datetime | None
    # field path -> deep-link scheme: every app the send names must declare it
    deep_links: dict[str, str] = field(default_factory=dict)
    priority: int | None = None
    # an A/B split (services/publisher/sends/split.py)
    variants: tuple[Variant, ...] = ()
    holdout_percent: float = 0


async def resolve_message(pool: asyncpg.Pool, content: SendContent) -> ResolvedMessage:
    """The content a send names, checked to exist with the right kind."""
    if (content.inAppMessage is None) == (content.inboxMessage is None):
        raise field_error("content", "give exactly one of inAppMessage or inboxMessage")
    if content.inAppMessage is not None:
        where, message = "content.inAppMessage.inAppContentId", content.inAppMessage
        resolved = ResolvedMessage(
            "inapp", message.inAppContentId, message.maxViews, message.expirationDate,
            priority=message.priority,
        )  # fmt: skip
    else:
        assert content.inboxMessage is not None
        where, inbox = "content.inboxMessage.inboxContentId", content.inboxMessage
        resolved = ResolvedMessage("inbox", inbox.inboxContentId, None, inbox.expirationDate)
    row = await content_repository.get_content(pool, resolved.content_id)
    if row is None or row["kind"] != resolved.kind:
        raise field_error(where, f"no {resolved.kind} content with id {resolved.content_id!r}")
    return replace(resolved, deep_links=url_policy.check(dict(row["body"]))[1])


async def check_app_keys(
    pool: asyncpg.Pool, app_keys: list[str], where: str, message: ResolvedMessage | None = None
) -> list[str]:
    """The named apps, once each; 400 naming ``where`` if one is unknown, or if one does
    not declare a deep-link scheme the content uses."""
    unique = list(dict.fromkeys(app_keys))
    schemes = await apps_repository.app_deep_link_schemes(pool, unique)
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
        priority=message.priority,
        variants=list(message.variants),
        holdout_percent=message.holdout_percent,
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
    message = await split.resolve_split(pool, await resolve_message(pool, command.content), command)
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
