"""Pure batch planning: an ordered page of recipients becomes SendBatch-sized groups.

Recipients arrive ordered by (bucket, contact_id). A batch never mixes buckets, so every
batch is keyed by one bucket and lands on that bucket's partition; a bucket boundary in the
middle of a page therefore closes a batch early.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from shared.events import Recipient


@dataclass(frozen=True)
class AudienceRow:
    bucket: int
    contact_id: str
    personalization: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlannedBatch:
    bucket: int
    recipients: tuple[Recipient, ...]
    # The keyset cursor to checkpoint once Kafka has acknowledged this batch.
    last_key: tuple[int, str]


def plan_batches(
    rows: Iterable[AudienceRow], batch_size: int, *, more_may_follow: bool = False
) -> list[PlannedBatch]:
    """Batches of at most ``batch_size`` recipients, one bucket each. When the page was
    full (``more_may_follow``), a short last batch is left for the next page, which starts
    after the last batch planned here, so batches are not cut short at page boundaries."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    batches: list[PlannedBatch] = []
    current: list[AudienceRow] = []

    def close() -> None:
        if current:
            last = current[-1]
            batches.append(
                PlannedBatch(
                    bucket=last.bucket,
                    recipients=tuple(
                        Recipient(contact_id=r.contact_id, personalization=r.personalization)
                        for r in current
                    ),
                    last_key=(last.bucket, last.contact_id),
                )
            )
            current.clear()

    for row in rows:
        if current and (row.bucket != current[-1].bucket or len(current) >= batch_size):
            close()
        current.append(row)
    close()
    if more_may_follow and len(batches) > 1 and len(batches[-1].recipients) < batch_size:
        batches.pop()
    return batches
