"""Pure batch planning: an ordered page of recipients becomes SendBatch-sized groups.

Recipients arrive ordered by (bucket, contact_id). A batch never mixes buckets, so every
batch is keyed by one bucket and lands on that bucket's partition; a bucket boundary in the
middle of a page therefore closes a batch early. So does size: a batch's recipients take
at most ``max_bytes`` of JSON, so that with its envelope (options, app keys: at most
``BATCH_ENVELOPE_BYTES``, checked when the send is accepted) it fits one Kafka message.
A recipient larger than that on its own travels alone (the publisher refuses one that
could not fit even so).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from shared.events import Recipient
from shared.topics import BATCH_ENVELOPE_BYTES, MAX_EVENT_BYTES

RECIPIENTS_MAX_BYTES = MAX_EVENT_BYTES - BATCH_ENVELOPE_BYTES


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


def recipient_bytes(recipient: Recipient) -> int:
    """What a recipient adds to a SendBatch's JSON (its object and a comma). The
    serializer's bytes, exactly as model_dump_json writes them, at half the cost."""
    return len(recipient.__pydantic_serializer__.to_json(recipient)) + 1


def plan_batches(
    rows: Iterable[AudienceRow],
    batch_size: int,
    *,
    more_may_follow: bool = False,
    max_bytes: int = RECIPIENTS_MAX_BYTES,
) -> list[PlannedBatch]:
    """Batches of at most ``batch_size`` recipients and ``max_bytes`` of recipients' JSON,
    one bucket each. When the page was full (``more_may_follow``), a short last batch is
    left for the next page, which starts after the last batch planned here, so batches
    are not cut short at page boundaries."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    batches: list[PlannedBatch] = []
    current: list[tuple[AudienceRow, Recipient]] = []
    size = 0
    for row in rows:
        recipient = Recipient(contact_id=row.contact_id, personalization=row.personalization)
        grows = recipient_bytes(recipient)
        if current and (
            row.bucket != current[-1][0].bucket
            or len(current) >= batch_size
            or size + grows > max_bytes
        ):
            batches.append(_batch(current))
            current, size = [], 0
        current.append((row, recipient))
        size += grows
    if current:
        batches.append(_batch(current))
    if more_may_follow and len(batches) > 1 and len(batches[-1].recipients) < batch_size:
        batches.pop()
    return batches


def _batch(members: list[tuple[AudienceRow, Recipient]]) -> PlannedBatch:
    last = members[-1][0]
    return PlannedBatch(
        bucket=last.bucket,
        recipients=tuple(recipient for _, recipient in members),
        last_key=(last.bucket, last.contact_id),
    )
