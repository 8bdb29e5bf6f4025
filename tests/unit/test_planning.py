"""plan_batches: batch size, bucket boundaries, checkpoint keys."""

from __future__ import annotations

import pytest

from services.scheduler.planning import AudienceRow, plan_batches


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
