"""BatchDeliverer with in-memory fakes: the per-recipient decisions and their order."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.delivery.adapters import outcomes_message
from services.delivery.caps import Cap
from services.delivery.deliverer import BatchDeliverer, effective_expiry
from services.delivery.repository import ContactState, Content, NewEntry
from shared.events import BatchDelivered, OutcomeDetail, Recipient, SendBatch, SendOptions
from shared.personalization import compile_tree


def rendered_copy(body: dict[str, Any], values: dict[str, str]) -> Any:
    return compile_tree(body)(values)


NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


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
    def __init__(
        self,
        content: Content | None,
        contacts: dict[str, ContactState],
        app_limits: dict[str, dict[str, int]] | None = None,
        tag_caps: dict[str, tuple[int, int]] | None = None,
    ) -> None:
        self._content, self._contacts = content, contacts
        self._app_limits, self._tag_caps = app_limits or {}, tag_caps or {}
        self.inbox: dict[tuple[int, str], NewEntry] = {}
        self.failures: dict[tuple[int, str], OutcomeDetail] = {}

    async def record_failures(self, job_id: int, failures: Mapping[str, OutcomeDetail]) -> None:
        for contact_id, detail in failures.items():
            self.failures.setdefault((job_id, contact_id), detail)

    async def app_limits(self, app_keys: list[str]) -> dict[str, dict[str, int]]:
        return {k: v for k, v in self._app_limits.items() if k in app_keys}

    async def tag_caps(self, tags: list[str]) -> dict[str, tuple[int, int]]:
        return {k: v for k, v in self._tag_caps.items() if k in tags}

    async def content(self, content_id: str) -> Content | None:
        return self._content if self._content and self._content.id == content_id else None

    async def contacts(self, contact_ids: list[str]) -> dict[str, ContactState]:
        if any("\x00" in c for c in contact_ids):  # as PostgreSQL does, for the whole query
            raise ValueError('invalid byte sequence for encoding "UTF8": 0x00')
        return {c: self._contacts[c] for c in contact_ids if c in self._contacts}

    def copy(self, job_id: int, contact_id: str) -> Any:
        """The copy a device gets of the contact's entry."""
        return self.inbox[(job_id, contact_id)].payload

    async def file_entries(
        self, batch: SendBatch, content: Content, entries: list[NewEntry]
    ) -> set[str]:
        filed = set()
        for entry in entries:
            if (batch.job_id, entry.contact_id) not in self.inbox:
                # kept as a device gets it: an entry filed by value is rendered by sync
                copy = entry.payload or rendered_copy(content.body, entry.values or {})
                self.inbox[(batch.job_id, entry.contact_id)] = replace(entry, payload=copy)
                filed.add(entry.contact_id)
        return filed


class FakeCaps:
    """The counting rule of services/delivery/caps.py in memory (the Lua script itself is
    tested against the real Redis in tests/integration/test_frequency_caps.py)."""

    def __init__(self) -> None:
        self.sets: dict[tuple[str, str], dict[int, float]] = {}

    async def admit(
        self, job_id: int, contact_ids: Sequence[str], caps: Sequence[Cap], now: datetime
    ) -> set[str]:
        over = set()
        t = now.timestamp() * 1000
        for contact in contact_ids:
            sets = [self.sets.setdefault((contact, cap.scope), {}) for cap in caps]
            if any(job_id in members for members in sets):
                continue
            if any(
                sum(1 for ts in members.values() if ts > t - window) >= limit
                for cap, members in zip(caps, sets, strict=True)
                for window, limit in cap.windows
            ):
                over.add(contact)
                continue
            for members in sets:
                members[job_id] = t
        return over


class FakeSignal:
    def __init__(self) -> None:
        self.changed: list[str] = []

    async def inboxes_changed(self, contact_ids: Iterable[str]) -> None:
        self.changed += sorted(contact_ids)


def batch(*contact_ids: str, **options: Any) -> SendBatch:
    return SendBatch(
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

    return BatchDeliverer(store, FakeCaps(), signal, emit, clock=lambda: NOW), signal, emitted


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
    assert store.copy(7, "ok")["payload"]["gcm"]["content"]["title"] == "Hello Ada"
    assert store.copy(7, "optin")["payload"]["gcm"]["content"]["title"] == "Hello Valued Customer"
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
    assert signal.changed == ["a", "a"]  # a retry re-signals: its first signal may have failed


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
    assert (store.copy(7, "evil")["url"], store.copy(7, "evil")["image"]) == (
        "",
        "",
    )
    assert store.copy(7, "good")["url"] == "https://example.com/x"


async def test_app_limits_count_only_sends_using_app_frequency() -> None:
    store = FakeStore(CONTENT, {"a": ContactState({}, {})}, app_limits={"app": {"perDay": 1}})
    d, _, _ = deliverer(store)
    plain = [await d.deliver(batch("a").model_copy(update={"job_id": j})) for j in (1, 2)]
    assert [reasons(r) for r in plain] == [{"a": "delivered"}, {"a": "delivered"}]
    counted = [
        await d.deliver(batch("a", using_app_frequency=True).model_copy(update={"job_id": j}))
        for j in (3, 4)
    ]
    assert [reasons(r) for r in counted] == [{"a": "delivered"}, {"a": "frequency_capped"}]


async def test_tag_caps_apply_to_every_send_and_tests_count_toward_nothing() -> None:
    tagged = Content(**{**CONTENT.__dict__, "tags": ["promo"]})
    store = FakeStore(tagged, {"a": ContactState({}, {})}, tag_caps={"promo": (1, 3600)})
    d, _, _ = deliverer(store)
    test = await d.deliver(batch("a", is_test=True).model_copy(update={"job_id": 1}))
    first = await d.deliver(batch("a").model_copy(update={"job_id": 2}))
    second = await d.deliver(batch("a").model_copy(update={"job_id": 3}))
    assert [reasons(r) for r in (test, first, second)] == [
        {"a": "delivered"},
        {"a": "delivered"},
        {"a": "frequency_capped"},
    ]


async def test_a_redelivered_batch_is_not_capped_by_its_own_first_delivery() -> None:
    store = FakeStore(CONTENT, {"a": ContactState({}, {})}, app_limits={"app": {"perDay": 1}})
    d, _, _ = deliverer(store)
    first = await d.deliver(batch("a", using_app_frequency=True))
    again = await d.deliver(batch("a", using_app_frequency=True))
    assert (reasons(first), reasons(again)) == ({"a": "delivered"}, {"a": "duplicate"})


async def test_unsubscribed_is_decided_before_caps_and_does_not_use_a_slot() -> None:
    store = FakeStore(
        CONTENT,
        {"out": ContactState({}, {"offers": False})},
        app_limits={"app": {"perDay": 1}},
    )
    d, _, _ = deliverer(store)
    result = await d.deliver(batch("out", using_app_frequency=True))
    assert reasons(result) == {"out": "unsubscribed"}
    assert store.inbox == {}


SEED_FORMULA_CONTENT = Content(
    **{
        **CONTENT.__dict__,
        "body": {"payload": {"gcm": {"content": {"title": "Hi %%First_Name%%",
                                                 "text": "Expires %%expiration_date%%"}}}},
        "personalization_defaults": {"First_Name": "Valued Customer", "expiration_date": ""},
        "personalization_formulas": {"expiration_date": 'format(Customer_Date, "dd-MM-yyyy")'},
        "category": None,
    }
)  # fmt: skip


@pytest.mark.parametrize(
    ("attributes", "field"),
    [
        ({"Customer_Date": 1e20}, "expiration_date"),  # the issue: OSError in fromtimestamp
        ({"Customer_Date": 10**30}, "expiration_date"),
        ({"Customer_Date": float("nan")}, "expiration_date"),
        ({"Customer_Date": float("inf")}, "expiration_date"),
        ({"Customer_Date": -(10**15)}, "expiration_date"),
        ({"First_Name": 10**5000}, "first_name"),  # too long to print
        ({"First_Name": _nested(5000)}, "first_name"),  # too deep to print
    ],
)
async def test_one_bad_recipient_is_skipped_and_the_rest_of_the_batch_delivered(
    attributes: dict[str, Any], field: str
) -> None:
    store = FakeStore(
        SEED_FORMULA_CONTENT,
        {
            "good": ContactState({"first_name": "Ada", "Customer_Date": "2026-03-05"}, {}),
            "bad": ContactState(attributes, {}),
            "plain": ContactState({}, {}),
        },
    )
    d, signal, emitted = deliverer(store)
    result = await d.deliver(batch("good", "bad", "plain"))
    assert reasons(result) == {
        "good": "delivered",
        "bad": "personalization_failed",
        "plain": "delivered",
    }
    content = store.copy(7, "good")["payload"]["gcm"]["content"]
    assert content == {"title": "Hi Ada", "text": "Expires 05-03-2026"}
    assert (7, "bad") not in store.inbox
    assert signal.changed == ["good", "plain"]
    [bad] = [o for o in emitted[0].outcomes if o.contact_id == "bad"]
    assert bad.detail is not None and bad.detail.field == field and bad.detail.error
    assert store.failures == {(7, "bad"): bad.detail}


async def test_a_recipient_skipped_for_personalization_uses_up_no_cap() -> None:
    store = FakeStore(
        SEED_FORMULA_CONTENT,
        {"a": ContactState({"Customer_Date": 1e20}, {})},
        app_limits={"app": {"perDay": 1}},
    )
    d, _, _ = deliverer(store)
    first = await d.deliver(batch("a", using_app_frequency=True))
    store._contacts["a"] = ContactState({"Customer_Date": "2026-03-05"}, {})
    second = await d.deliver(batch("a", using_app_frequency=True).model_copy(update={"job_id": 8}))
    assert [reasons(first), reasons(second)] == [
        {"a": "personalization_failed"},
        {"a": "delivered"},
    ]


async def test_a_content_whose_formula_cannot_compile_skips_its_recipients_with_the_formula() -> (
    None
):
    broken = Content(
        **{
            **CONTENT.__dict__,
            "body": {"payload": {"gcm": {"content": {"title": "Due %%When%%"}}}},
            "personalization_formulas": {"when": "format(d, "},
        }
    )
    d, _, emitted = deliverer(FakeStore(broken, {"a": ContactState({}, {})}))
    assert reasons(await d.deliver(batch("a"))) == {"a": "personalization_failed"}
    detail = emitted[0].outcomes[0].detail
    assert detail is not None and detail.field == "when"


async def test_a_formula_no_merge_tag_uses_is_never_evaluated() -> None:
    unused = Content(
        **{**CONTENT.__dict__, "personalization_formulas": {"when": 'format(d, "dd-MM-yyyy")'}}
    )
    d, _, _ = deliverer(FakeStore(unused, {"a": ContactState({"d": 1e20}, {})}))
    assert reasons(await d.deliver(batch("a"))) == {"a": "delivered"}


async def test_outcomes_without_a_detail_read_as_before_on_the_wire() -> None:
    contacts = {"a": ContactState({}, {}), "b": ContactState({"Customer_Date": 1e20}, {})}
    store = FakeStore(SEED_FORMULA_CONTENT, contacts)
    d, _, emitted = deliverer(store)
    await d.deliver(batch("a", "b", "ghost"))
    wire = json.loads(outcomes_message(emitted[0]))
    assert wire["outcomes"][0] == {"contact_id": "a", "outcome": "delivered"}
    assert wire["outcomes"][2] == {"contact_id": "ghost", "outcome": "skipped",
                                   "reason": "unknown_contact"}  # fmt: skip
    assert wire["outcomes"][1]["detail"]["field"] == "expiration_date"
    assert BatchDelivered.model_validate_json(outcomes_message(emitted[0])) == emitted[0]


async def test_a_contact_id_postgresql_cannot_hold_is_unknown_and_fails_nobody_else() -> None:
    store = FakeStore(CONTENT, {"a": ContactState({}, {})})
    d, _, _ = deliverer(store)
    assert reasons(await d.deliver(batch("a", "nul\x00id"))) == {
        "a": "delivered",
        "nul\x00id": "unknown_contact",
    }


@pytest.mark.parametrize(
    "personalization",
    [{"first_name": "Ada\x00"}, {"first_name": 2**70}, {"first_name": {"deep": ["\x00"]}}],
)
async def test_a_value_postgresql_cannot_store_fails_only_its_recipient(
    personalization: dict[str, Any],
) -> None:
    store = FakeStore(CONTENT, {"a": ContactState({}, {}), "b": ContactState({}, {})})
    d, _, _ = deliverer(store)
    odd = batch("a", "b")
    odd = odd.model_copy(
        update={
            "recipients": [
                odd.recipients[0],
                Recipient(contact_id="b", personalization=personalization),
            ]
        }
    )
    assert reasons(await d.deliver(odd)) == {"a": "delivered", "b": "personalization_failed"}
    assert store.failures[(7, "b")].field == "first_name"
