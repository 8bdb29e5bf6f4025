"""BatchDeliverer with in-memory fakes: the per-recipient decisions and their order."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.delivery.handlers import BatchDeliverer, effective_expiry
from services.delivery.repository import ContactState, Content, NewEntry
from shared.events import BatchDelivered, BatchScheduled, Recipient, SendOptions

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

CONTENT = Content(
    id="MqU8NG7y",
    kind="inapp",
    body={"payload": {"gcm": {"maxViews": 3, "content": {"title": "Hello %%First_Name%%"}}}},
    personalization_defaults={"First_Name": "Valued Customer"},
    personalization_formulas={},
    category="offers",
    tags=[],
    ttl_seconds=None,
)


class FakeStore:
    def __init__(self, content: Content | None, contacts: dict[str, ContactState]) -> None:
        self._content, self._contacts = content, contacts
        self.inbox: dict[tuple[int, str], NewEntry] = {}

    async def content(self, content_id: str) -> Content | None:
        return self._content if self._content and self._content.id == content_id else None

    async def contacts(self, contact_ids: list[str]) -> dict[str, ContactState]:
        return {c: self._contacts[c] for c in contact_ids if c in self._contacts}

    async def file_entries(
        self, batch: BatchScheduled, content: Content, entries: list[NewEntry]
    ) -> set[str]:
        filed = set()
        for entry in entries:
            if (batch.job_id, entry.contact_id) not in self.inbox:
                self.inbox[(batch.job_id, entry.contact_id)] = entry
                filed.add(entry.contact_id)
        return filed


class FakeSignal:
    def __init__(self) -> None:
        self.changed: list[str] = []

    async def inboxes_changed(self, contact_ids: Iterable[str]) -> None:
        self.changed += sorted(contact_ids)


def batch(*contact_ids: str, **options: Any) -> BatchScheduled:
    return BatchScheduled(
        job_id=7,
        batch_seq=0,
        bucket=0,
        content_id="MqU8NG7y",
        content_kind="inapp",
        app_keys=["app"],
        options=SendOptions(**options),
        launched_at=NOW,
        recipients=[Recipient(contact_id=c, personalization={}) for c in contact_ids],
    )


def deliverer(store: FakeStore) -> tuple[BatchDeliverer, FakeSignal, list[BatchDelivered]]:
    signal, emitted = FakeSignal(), []

    async def emit(result: BatchDelivered) -> None:
        emitted.append(result)

    return BatchDeliverer(store, signal, emit, clock=lambda: NOW), signal, emitted


def reasons(result: BatchDelivered) -> dict[str, str | None]:
    return {o.contact_id: o.reason or o.outcome for o in result.outcomes}


async def test_each_skip_reason_and_delivery() -> None:
    store = FakeStore(
        CONTENT,
        {
            "ok": ContactState({"first_name": "Ada"}, {}),
            "optout": ContactState({}, {"offers": False}),
            "optin": ContactState({}, {"offers": True}),
        },
    )
    d, signal, emitted = deliverer(store)
    result = await d.deliver(batch("ok", "ghost", "optout", "optin"))
    assert reasons(result) == {
        "ok": "delivered",
        "ghost": "unknown_contact",
        "optout": "unsubscribed",
        "optin": "delivered",
    }
    assert store.inbox[(7, "ok")].payload["payload"]["gcm"]["content"]["title"] == "Hello Ada"
    assert (
        store.inbox[(7, "optin")].payload["payload"]["gcm"]["content"]["title"]
        == "Hello Valued Customer"
    )
    assert signal.changed == ["ok", "optin"]
    assert emitted == [result]


async def test_expired_at_delivery_is_skipped_before_subscription() -> None:
    store = FakeStore(CONTENT, {"optout": ContactState({}, {"offers": False})})
    d, _, _ = deliverer(store)
    result = await d.deliver(batch("optout", expiration_date=NOW - timedelta(seconds=1)))
    assert reasons(result) == {"optout": "expired"}
    assert store.inbox == {}


async def test_the_same_batch_twice_files_once_and_reports_duplicate() -> None:
    store = FakeStore(CONTENT, {"a": ContactState({}, {})})
    d, signal, _ = deliverer(store)
    await d.deliver(batch("a"))
    second = await d.deliver(batch("a"))
    assert reasons(second) == {"a": "duplicate"}
    assert len(store.inbox) == 1
    assert signal.changed == ["a"]


async def test_max_views_send_overrides_content_and_defaults_to_content() -> None:
    store = FakeStore(CONTENT, {"a": ContactState({}, {}), "b": ContactState({}, {})})
    d, _, _ = deliverer(store)
    await d.deliver(batch("a", max_views=5))
    assert store.inbox[(7, "a")].max_views == 5
    other = batch("b").model_copy(update={"job_id": 8})
    await d.deliver(other)
    assert store.inbox[(8, "b")].max_views == 3


async def test_unknown_content_skips_everyone() -> None:
    d, _, emitted = deliverer(FakeStore(None, {"a": ContactState({}, {})}))
    assert reasons(await d.deliver(batch("a"))) == {"a": "unknown_content"}
    assert len(emitted) == 1


@pytest.mark.parametrize(
    ("expiration", "ttl", "expected"),
    [
        (None, None, None),
        (NOW + timedelta(days=2), None, NOW + timedelta(days=2)),
        (None, 3600, NOW + timedelta(hours=1)),
        (NOW + timedelta(days=2), 3600, NOW + timedelta(hours=1)),
        (NOW + timedelta(minutes=5), 3600, NOW + timedelta(minutes=5)),
    ],
)
def test_effective_expiry_is_the_earliest(
    expiration: datetime | None, ttl: int | None, expected: datetime | None
) -> None:
    assert effective_expiry(expiration, ttl, NOW) == expected


async def test_personalization_cannot_smuggle_an_unsafe_url() -> None:
    inbox = Content(
        id="MqU8NG7y",
        kind="inbox",
        body={"title": "Hi", "text": "t", "url": "%%landing%%", "image": "%%img%%"},
        personalization_defaults={},
        personalization_formulas={},
        category=None,
        tags=[],
        ttl_seconds=None,
    )
    store = FakeStore(
        inbox,
        {
            "evil": ContactState(
                {"landing": "javascript:alert(1)", "img": "data:image/png;base64,AA"}, {}
            ),
            "good": ContactState(
                {"landing": "https://example.com/x", "img": "https://cdn.example/i.png"}, {}
            ),
        },
    )
    d, _, _ = deliverer(store)
    await d.deliver(batch("evil", "good"))
    assert (store.inbox[(7, "evil")].payload["url"], store.inbox[(7, "evil")].payload["image"]) == (
        "",
        "",
    )
    assert store.inbox[(7, "good")].payload["url"] == "https://example.com/x"
