"""plan_batches: batch size, bucket boundaries, bytes per batch, checkpoint keys; and the
SendBatch events encode_batch makes of them, as delivery reads them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter

from services.scheduler.planning import (
    AudienceRow,
    PlannedBatch,
    encode_batch,
    plan_batches,
    recipient_json,
)
from shared.events import Recipient, SendBatch, SendOptions
from shared.topics import BATCH_ENVELOPE_BYTES, MAX_EVENT_BYTES


def rows(spec: list[tuple[int, int]]) -> list[AudienceRow]:
    """spec: (bucket, how many contacts) in order."""
    out = []
    for bucket, count in spec:
        out += [AudienceRow(bucket, f"c{bucket:03d}-{i:04d}", {"i": i}) for i in range(count)]
    return out


def recipients(batch: PlannedBatch) -> list[Recipient]:
    return [Recipient.model_validate_json(r) for r in batch.recipients]


def ids(batches: list[PlannedBatch]) -> list[str]:
    return [r.contact_id for b in batches for r in recipients(b)]


def envelope(seq: int, bucket: int, **fields: Any) -> SendBatch:
    return SendBatch.model_construct(
        **{
            "event_id": f"job-{2**62}-batch-{seq}", "job_id": 2**62, "batch_seq": seq,
            "bucket": bucket, "content_id": "MqU8NG7y", "content_kind": "inapp",
            "app_keys": ["k" * 16], "options": SendOptions(),
            "launched_at": datetime.now(UTC), **fields,
        }
    )  # fmt: skip


def test_batches_never_exceed_batch_size_and_keep_every_recipient_once() -> None:
    page = rows([(3, 2500)])
    batches = plan_batches(page, 1000)
    assert [len(b.recipients) for b in batches] == [1000, 1000, 500]
    assert ids(batches) == [r.contact_id for r in page]


def test_a_bucket_boundary_closes_a_batch() -> None:
    batches = plan_batches(rows([(1, 3), (2, 4), (7, 1)]), 1000)
    assert [(b.bucket, len(b.recipients)) for b in batches] == [(1, 3), (2, 4), (7, 1)]


def test_checkpoint_key_is_the_last_recipient_of_each_batch() -> None:
    batches = plan_batches(rows([(5, 3)]), 2)
    assert [b.last_key for b in batches] == [(5, "c005-0001"), (5, "c005-0002")]


def test_personalization_travels_with_the_recipient() -> None:
    [batch] = plan_batches([*rows([(0, 2)]), AudienceRow(0, "none", None)], 10)
    assert [r.personalization for r in recipients(batch)] == [{"i": 0}, {"i": 1}, {}]


def test_empty_page_plans_nothing_and_bad_size_is_refused() -> None:
    assert plan_batches([], 10) == []
    with pytest.raises(ValueError):
        plan_batches(rows([(0, 1)]), 0)


def test_a_full_page_leaves_its_short_tail_for_the_next_page() -> None:
    page = rows([(1, 5), (2, 3)])
    planned = plan_batches(page, 4, more_may_follow=True)
    assert [(b.bucket, len(b.recipients)) for b in planned] == [(1, 4), (1, 1)]
    assert planned[-1].last_key == (1, "c001-0004")  # the next page starts after this
    final = plan_batches(page, 4, more_may_follow=False)
    assert [(b.bucket, len(b.recipients)) for b in final] == [(1, 4), (1, 1), (2, 3)]


def big_rows(count: int, value_bytes: int, bucket: int = 4) -> list[AudienceRow]:
    return [AudienceRow(bucket, f"c{i:05d}", {"blob": "x" * value_bytes}) for i in range(count)]


def test_batches_are_cut_by_bytes_and_keep_every_recipient_once_in_order() -> None:
    page = big_rows(50, 1000)
    batches = plan_batches(page, 1000, max_bytes=10_000)
    assert len(batches) > 1
    for batch in batches:
        # the recipients' list as pydantic writes it: objects, commas between, brackets
        written = TypeAdapter(list[Recipient]).dump_json(recipients(batch))
        assert len(written) <= 10_000 + 1
    assert ids(batches) == [r.contact_id for r in page]
    assert [b.last_key for b in batches] == [(4, recipients(b)[-1].contact_id) for b in batches]


def test_a_recipient_larger_than_the_budget_travels_alone() -> None:
    page = [*big_rows(2, 10), AudienceRow(4, "huge", {"blob": "y" * 5000}), *big_rows(1, 10)]
    page[-1] = AudienceRow(4, "z-last", {})
    batches = plan_batches(page, 1000, max_bytes=1000)
    assert [[r.contact_id for r in recipients(b)] for b in batches] == [
        ["c00000", "c00001"],
        ["huge"],
        ["z-last"],
    ]


def test_every_planned_send_batch_fits_one_kafka_message() -> None:
    """1,000 recipients of 4 KiB personalization each (4 MiB) with the largest envelope the
    publisher accepts: every SendBatch produced from the plan fits MAX_EVENT_BYTES."""
    defaults = {"d": "z" * (BATCH_ENVELOPE_BYTES - 2000)}
    options = SendOptions(personalization_defaults=defaults)
    batches = plan_batches(big_rows(1000, 4096), 1000)
    assert len(batches) >= 5
    for seq, batch in enumerate(batches):
        value = encode_batch(
            envelope(seq, batch.bucket, app_keys=["k" * 16] * 50, options=options), batch
        )
        assert len(value) <= MAX_EVENT_BYTES
        assert len(SendBatch.model_validate_json(value).recipients) == len(batch.recipients)


ODD_VALUES = {
    "text": 'é ☃ \U0001f600 "quoted" \\ / <b> \n\t\r\x00\x1f\x7f \u2028',
    "float": 1.5e20, "small": -2.5e-7, "int": 2**63, "negative": -(2**63), "none": None,
    "list": [1, 2.0, True, False, {"nested": "x"}], "empty": {},
}  # fmt: skip


def test_a_send_batch_reads_as_delivery_reads_it_and_as_pydantic_writes_it() -> None:
    page = [AudienceRow(9, "ü-1\n", ODD_VALUES), AudienceRow(9, "c-2", {}), AudienceRow(9, "c-3")]
    [batch] = plan_batches(page, 10)
    options = SendOptions(
        max_views=3, expiration_date=datetime(2030, 1, 2, 3, 4, 5, 678, UTC),
        personalization_defaults={"name": "friend ☃"}, using_app_frequency=True,
    )  # fmt: skip
    sent = envelope(7, 9, app_keys=["a", "b"], options=options)
    value = encode_batch(sent, batch)

    event = SendBatch.model_validate_json(value)  # what delivery does with it
    expected = SendBatch(
        **sent.model_dump(exclude={"recipients"}),
        recipients=[
            Recipient(contact_id="ü-1\n", personalization=ODD_VALUES),
            Recipient(contact_id="c-2"),
            Recipient(contact_id="c-3"),
        ],
    )
    assert event == expected
    assert value == expected.model_dump_json().encode()


def test_every_character_of_a_contact_id_is_written_as_pydantic_writes_it() -> None:
    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    for start in range(0, len(every), 65536):
        contact_id = every[start : start + 65536]
        expected = Recipient(contact_id=contact_id).model_dump_json()
        assert recipient_json(contact_id, None) == expected
