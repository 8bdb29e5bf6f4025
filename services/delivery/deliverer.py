"""Deliver one SendBatch: decide deliver-or-skip per recipient, file inbox entries.

The order of checks is the product's promise: unknown contact, expiry, subscription
category, personalization, frequency caps, duplicate. Everything is done per batch:
one query for the contacts, one INSERT for the entries, one pipelined Redis round trip.

One recipient whose copy cannot be personalized (a formula failing on a hostile
attribute, a value that cannot be printed, any error while rendering that recipient) is
skipped with ``personalization_failed``; the field and the error travel with its outcome
and are kept in ``delivery_failures``. It is personalized before the caps are counted, so
it uses up no cap. The rest of the batch is delivered.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson

from services.delivery.caps import Cap, app_caps, tag_caps
from services.delivery.repository import ContactState, Content, NewEntry
from shared.ab_split import HOLDOUT, assign
from shared.events import (
    BatchDelivered,
    OutcomeDetail,
    Recipient,
    SendBatch,
    SkipReason,
    Variant,
)
from shared.personalization import (
    PersonalizationError,
    Personalizer,
    compile_tree,
    tag_names,
)
from shared.personalization.locales import localized, recipient_locale, variant_for
from shared.personalization.stored import stored_values
from shared.personalization.urls import drop_unsafe_urls, urls_depend_on_personalization

log = logging.getLogger(__name__)


class DeliveryStore(Protocol):
    async def content(self, content_id: str) -> Content | None: ...

    async def contacts(self, contact_ids: list[str]) -> dict[str, ContactState]: ...

    async def file_entries(
        self, batch: SendBatch, content: Content, entries: list[NewEntry]
    ) -> set[str]: ...

    async def app_limits(self, app_keys: list[str]) -> dict[str, dict[str, int]]: ...

    async def tag_caps(self, tags: list[str]) -> dict[str, tuple[int, int]]: ...

    async def record_failures(self, job_id: int, failures: Mapping[str, OutcomeDetail]) -> None: ...


class CapCounter(Protocol):
    async def admit(
        self, job_id: int, contact_ids: Sequence[str], caps: Sequence[Cap], now: datetime
    ) -> set[str]: ...


class InboxSignal(Protocol):
    async def inboxes_changed(self, contact_ids: Iterable[str]) -> None: ...


Clock = Callable[[], datetime]


def effective_expiry(
    expiration_date: datetime | None, ttl_seconds: int | None, now: datetime
) -> datetime | None:
    """The earliest of the send's expirationDate and delivery time + content TTL."""
    candidates = [d for d in (expiration_date,) if d is not None]
    if ttl_seconds:
        candidates.append(now + timedelta(seconds=ttl_seconds))
    return min(candidates) if candidates else None


def max_views_for(batch: SendBatch, content: Content) -> int:
    """Send-level maxViews overrides the content's; default 1."""
    if batch.options.max_views is not None:
        return batch.options.max_views
    platforms = content.body.get("payload") or {}
    views = [p.get("maxViews") for p in platforms.values() if isinstance(p, dict)]
    return next((v for v in views if isinstance(v, int) and v >= 1), 1)


def priority_for(batch: SendBatch, content: Content) -> int:
    """Send-level priority overrides the content's; default 0 (0-10, highest shown first)."""
    if batch.options.priority is not None:
        return batch.options.priority
    priority = content.body.get("priority")
    return priority if isinstance(priority, int) and 0 <= priority <= 10 else 0


class BatchDeliverer:
    def __init__(
        self,
        store: DeliveryStore,
        caps: CapCounter,
        signal: InboxSignal,
        emit: Callable[[BatchDelivered], Awaitable[None]],
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.store, self.caps, self.signal, self.emit = store, caps, signal, emit
        self.clock = clock

    async def deliver(self, batch: SendBatch) -> BatchDelivered:
        arms = None
        if batch.options.variants:
            skipped, failures, arms = await self._split(batch)
        else:
            skipped, failures = await self._deliver_content(batch, batch.content_id)
        result = self._outcomes(batch, skipped, failures, arms)
        await self.emit(result)
        return result

    async def _split(
        self, batch: SendBatch
    ) -> tuple[dict[str, SkipReason], dict[str, OutcomeDetail], dict[str, str]]:
        """An A/B send: each recipient's arm (shared/ab_split.py); each variant's
        recipients delivered with its content, the holdout skipped ``holdout``."""
        options = batch.options
        arms: dict[str, str] = {}
        groups: dict[Variant, list[Recipient]] = {}
        for recipient in batch.recipients:
            variant = assign(
                batch.job_id, recipient.contact_id, options.variants, options.holdout_percent
            )
            arms[recipient.contact_id] = variant.name if variant else HOLDOUT
            if variant is not None:
                groups.setdefault(variant, []).append(recipient)
        skipped: dict[str, SkipReason] = {c: "holdout" for c, arm in arms.items() if arm == HOLDOUT}
        failures: dict[str, OutcomeDetail] = {}
        for variant, recipients in groups.items():
            part = batch.model_copy(update={"recipients": recipients})
            more, failed = await self._deliver_content(part, variant.content_id or batch.content_id)
            skipped.update(more)
            failures.update(failed)
        return skipped, failures, arms

    async def _deliver_content(
        self, batch: SendBatch, content_id: str
    ) -> tuple[dict[str, SkipReason], dict[str, OutcomeDetail]]:
        """File the batch's recipients' entries of one content: the recipients skipped,
        with why, and the details of those whose personalization failed."""
        content = await self.store.content(content_id)
        if content is None:
            return {r.contact_id: "unknown_content" for r in batch.recipients}, {}
        now = self.clock()
        # An id PostgreSQL cannot hold (a NUL, a lone surrogate) is no contact's: it is
        # left out of the query (which it would fail for the whole batch) and is unknown.
        contacts = await self.store.contacts(
            [r.contact_id for r in batch.recipients if storable_text(r.contact_id)]
        )
        expires_at = effective_expiry(batch.options.expiration_date, content.ttl_seconds, now)
        skipped: dict[str, SkipReason] = {}
        eligible = []
        for recipient in batch.recipients:
            contact = contacts.get(recipient.contact_id)
            reason = self._skip_reason(contact, content, expires_at, now)
            if reason is not None:
                skipped[recipient.contact_id] = reason
            else:
                eligible.append(recipient)
        entries, failures = _personalize(batch, content, eligible, contacts, expires_at)
        if failures:
            skipped.update(dict.fromkeys(failures, "personalization_failed"))
            await self.store.record_failures(batch.job_id, failures)
        capped = await self.caps.admit(
            batch.job_id, [e.contact_id for e in entries], await self._caps(batch, content), now
        )
        skipped.update(dict.fromkeys(capped, "frequency_capped"))
        entries = [e for e in entries if e.contact_id not in capped]
        filed = await self.store.file_entries(batch, content, entries)
        skipped.update({e.contact_id: "duplicate" for e in entries if e.contact_id not in filed})
        # Duplicates too: if an earlier attempt filed them but died before this signal
        # (Redis down), only this retry can make their messages visible to sync.
        await self.signal.inboxes_changed([e.contact_id for e in entries])
        return skipped, failures

    async def _caps(self, batch: SendBatch, content: Content) -> list[Cap]:
        """App limits count only usingAppFrequency sends; tag caps count every send whose
        content carries the tag. Test sends count toward nothing."""
        if batch.options.is_test:
            return []
        caps = []
        if batch.options.using_app_frequency:
            caps += app_caps(await self.store.app_limits(batch.app_keys))
        if content.tags:
            caps += tag_caps(await self.store.tag_caps(content.tags))
        return caps

    @staticmethod
    def _skip_reason(
        contact: ContactState | None, content: Content, expires_at: datetime | None, now: datetime
    ) -> SkipReason | None:
        if contact is None:
            return "unknown_contact"
        if expires_at is not None and expires_at <= now:
            return "expired"
        if content.category and contact.subscriptions.get(content.category) is False:
            return "unsubscribed"
        return None

    @staticmethod
    def _outcomes(
        batch: SendBatch,
        skipped: dict[str, Any],
        details: Mapping[str, OutcomeDetail] | None = None,
        arms: Mapping[str, str] | None = None,
    ) -> BatchDelivered:
        details = details or {}
        outcomes: list[dict[str, Any]] = []
        for r in batch.recipients:
            reason = skipped.get(r.contact_id)
            if reason is None:
                outcome: dict[str, Any] = {"contact_id": r.contact_id, "outcome": "delivered"}
            else:
                outcome = {"contact_id": r.contact_id, "outcome": "skipped", "reason": reason,
                           "detail": details.get(r.contact_id)}  # fmt: skip
            if arms:
                outcome["variant"] = arms[r.contact_id]
            outcomes.append(outcome)
        # validated as one document: one call instead of one per recipient
        return BatchDelivered.model_validate(
            {
                "event_id": f"delivered-{batch.job_id}-{batch.batch_seq}",
                "job_id": batch.job_id,
                "batch_seq": batch.batch_seq,
                "content_id": batch.content_id,
                "is_test": batch.options.is_test,
                "outcomes": outcomes,
            }
        )


def _personalize(
    batch: SendBatch,
    content: Content,
    recipients: list[Recipient],
    contacts: dict[str, ContactState],
    expires_at: datetime | None,
) -> tuple[list[NewEntry], dict[str, OutcomeDetail]]:
    """Each recipient's entry (the texts of the tags the content uses; or the rendered
    copy, URL-checked, for a content whose URLs are personalized or a recipient given a
    locale variant); and the recipients whose entry could not be made, with why."""
    try:
        used = tag_names(content.body)  # a formula no tag uses is never evaluated
        formulas = content.personalization_formulas or {}
        personalizer = Personalizer(
            content.personalization_defaults,
            {name: source for name, source in formulas.items() if name.casefold() in used},
            batch.options.personalization_defaults,
        )
        copies = _Copies(content, sorted(used), max_views_for(batch, content), expires_at)
    except Exception as exc:  # the content itself cannot be personalized: nobody can be
        detail = failure_detail(exc)
        return [], {r.contact_id: detail for r in recipients}
    entries, failures = [], {}
    for recipient in recipients:
        try:
            check_storable(recipient.personalization)
            attributes = contacts[recipient.contact_id].attributes
            values = personalizer.values_for(recipient.personalization, attributes)
            locale = (
                recipient_locale(recipient.personalization, attributes) if copies.locales else None
            )
            entries.append(copies.entry(recipient.contact_id, values, locale))
        except Exception as exc:  # one recipient's bad value stops only that recipient
            failures[recipient.contact_id] = failure_detail(exc)
    if failures:
        first = next(iter(failures.values()))
        log.warning(
            "recipients skipped: personalization failed",
            extra={"job_id": batch.job_id, "batch_seq": batch.batch_seq,
                   "count": len(failures), "field": first.field, "error": first.error},
        )  # fmt: skip
    return entries, failures


class _Copies:
    """How one content's recipients are filed. A URL a merge tag makes is only known safe
    once rendered, and a locale variant is another copy of the content: such entries are
    stored rendered and URL-checked. Every other entry keeps only its tags' texts."""

    def __init__(
        self, content: Content, names: list[str], views: int, expires_at: datetime | None
    ) -> None:
        self.content, self.names, self.views, self.expires_at = content, names, views, expires_at
        self.locales = content.body.get("locales") or {}
        self.by_value = not urls_depend_on_personalization(content.kind, content.body)
        self.renderers: dict[str | None, Any] = {}
        if not self.by_value:
            self.renderer(None)  # a content that cannot be compiled fails the batch here

    def entry(self, contact_id: str, values: dict[str, Any], locale: object) -> NewEntry:
        variant = variant_for(self.locales, locale) if self.locales else None
        if self.by_value and variant is None:
            stored = stored_values(self.names, values)
            return NewEntry(contact_id, None, stored, self.views, self.expires_at)
        payload = drop_unsafe_urls(self.content.kind, self.renderer(variant)(values))
        return NewEntry(contact_id, payload, None, self.views, self.expires_at)

    def renderer(self, variant: str | None) -> Any:
        if variant not in self.renderers:
            body = localized(self.content.kind, self.content.body, variant)
            self.renderers[variant] = compile_tree(body)
        return self.renderers[variant]


def storable_text(text: str) -> bool:
    """Whether PostgreSQL can hold this text (no NUL, valid UTF-8: no lone surrogate)."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def check_storable(personalization: Mapping[str, Any]) -> None:
    """The send's own values for a recipient are the one input PostgreSQL has not seen:
    a value it cannot store (NUL, a lone surrogate, an integer beyond 64 bits, nesting
    deeper than 254) would fail the batch's INSERT for everyone, so it fails this
    recipient here."""
    for key, value in personalization.items() if personalization else ():
        problem = _unstorable(key) or _unstorable(value)
        if problem:
            raise PersonalizationError(str(key)[:200], problem)


def _unstorable(value: Any) -> str | None:
    """Why PostgreSQL could not store ``value`` as JSON, or None."""
    try:
        orjson.dumps(value)  # lone surrogates, integers beyond 64 bits, too deep
    except orjson.JSONEncodeError as exc:
        return str(exc)[:300]
    return "contains a NUL character" if _has_nul(value) else None


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def failure_detail(exc: BaseException) -> OutcomeDetail:
    """The field to blame (when one is) and a short error, never longer than the wire
    allows and always storable (it is kept in PostgreSQL and sent over Kafka)."""
    if isinstance(exc, PersonalizationError):
        return OutcomeDetail(field=_safe(exc.field, 200), error=_safe(exc.error, 300))
    try:
        message = str(exc)
    except Exception:  # an error whose message cannot be made still has a type
        message = ""
    return OutcomeDetail(field=None, error=_safe(f"{type(exc).__name__}: {message}", 300))


def _safe(text: str, limit: int) -> str:
    text = text[:limit].replace("\x00", "\\x00")
    return text.encode(errors="backslashreplace").decode()[:limit]
