"""plan_batches: batch size, bucket boundaries, bytes per batch, checkpoint keys."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.scheduler.planning import AudienceRow, plan_batches, recipient_bytes
from shared.events import SendBatch, SendOptions
from shared.topics import BATCH_ENVELOPE_BYTES, MAX_EVENT_BYTES


def rows(spec: list[tuple[int, int]]) -> list[AudienceRow]:
    """spec: (bucket, how many contacts) in order."""
    out = []
    for bucket, count in spec:
        out += [AudienceRow(bucket, f"c{bucket:03d}-{i:04d}", {"i": i}) for i in range(count)]
    return out


def test_batches_never_exceed_batch_size_and_keep_every_recipient_once() -> None:
    page = rows([(3, 2500)])
    batches = plan_batches(page, 1000)
    assert [len(b.recipients) for b in batches] == [1000, 1000, 500]
    ids = [r.contact_id for b in batches for r in b.recipients]
    assert ids == [r.contact_id for r in page]


def test_a_bucket_boundary_closes_a_batch() -> None:
    batches = plan_batches(rows([(1, 3), (2, 4), (7, 1)]), 1000)
    assert [(b.bucket, len(b.recipients)) for b in batches] == [(1, 3), (2, 4), (7, 1)]


def test_checkpoint_key_is_the_last_recipient_of_each_batch() -> None:
    batches = plan_batches(rows([(5, 3)]), 2)
    assert [b.last_key for b in batches] == [(5, "c005-0001"), (5, "c005-0002")]


def test_personalization_travels_with_the_recipient() -> None:
    [batch] = plan_batches(rows([(0, 2)]), 10)
    assert [r.personalization for r in batch.recipients] == [{"i": 0}, {"i": 1}]


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
        assert sum(recipient_bytes(r) for r in batch.recipients) <= 10_000
    ids = [r.contact_id for b in batches for r in b.recipients]
    assert ids == [r.contact_id for r in page]
    assert [b.last_key for b in batches] == [(4, b.recipients[-1].contact_id) for b in batches]


def test_a_recipient_larger_than_the_budget_travels_alone() -> None:
    page = [*big_rows(2, 10), AudienceRow(4, "huge", {"blob": "y" * 5000}), *big_rows(1, 10)]
    page[-1] = AudienceRow(4, "z-last", {})
    batches = plan_batches(page, 1000, max_bytes=1000)
    assert [[r.contact_id for r in b.recipients] for b in batches] == [
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
        event = SendBatch(
            event_id=f"job-{2**62}-batch-{seq}", job_id=2**62, batch_seq=seq,
            bucket=batch.bucket, content_id="MqU8NG7y", content_kind="inapp",
            app_keys=["k" * 16] * 50, options=options, launched_at=datetime.now(UTC),
            recipients=list(batch.recipients),
        )  # fmt: skip
        assert len(event.model_dump_json().encode()) <= MAX_EVENT_BYTES
