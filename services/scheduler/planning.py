"""Pure batch planning: an ordered page of recipients becomes SendBatch-sized groups.

Recipients arrive ordered by (bucket, contact_id). A batch never mixes buckets, so every
batch is keyed by one bucket and lands on that bucket's partition; a bucket boundary in the
middle of a page therefore closes a batch early. So does size: a batch's recipients take
at most ``max_bytes`` of JSON, so that with its envelope (options, app keys: at most
``BATCH_ENVELOPE_BYTES``, checked when the send is accepted) it fits one Kafka message.
A recipient larger than that on its own travels alone (the publisher refuses one that
could not fit even so).

Each recipient is written to JSON once, here, as ``SendBatch.recipients`` carries it,
and a batch's size is the length of the very text that goes on the wire; ``encode_batch``
joins the texts into the event, byte for byte what ``SendBatch.model_dump_json`` writes.
No pydantic model, nor any dict, per recipient: measured with py-spy, building and
measuring models cost more than everything else the scheduler does per recipient, and
thousands of dicts alive at once made the garbage collector walk them over and over
(strings are not tracked by it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from shared.events import SendBatch
from shared.topics import BATCH_ENVELOPE_BYTES, MAX_EVENT_BYTES

if TYPE_CHECKING:
    import asyncpg

RECIPIENTS_MAX_BYTES = MAX_EVENT_BYTES - BATCH_ENVELOPE_BYTES


class AudienceRow(NamedTuple):
    """One recipient as the audience query returns it. The scheduler passes the query's
    records straight through (they unpack the same way), without a copy per row."""

    bucket: int
    contact_id: str
    personalization: dict[str, Any] | None = None


@dataclass(frozen=True)
class PlannedBatch:
    bucket: int
    # Each recipient's JSON (recipient_json), in order.
    recipients: tuple[str, ...]
    # The keyset cursor to checkpoint once Kafka has acknowledged this batch.
    last_key: tuple[int, str]


def recipient_json(contact_id: str, personalization: dict[str, Any] | None) -> str:
    """A ``Recipient`` as pydantic writes it: the stdlib's JSON string escaping is
    pydantic's (and orjson's) for every character (tests/unit/test_planning.py), and
    personalization, decoded from jsonb by orjson, is written back by orjson."""
    values = orjson.dumps(personalization).decode() if personalization else "{}"
    return f'{{"contact_id":{encode_basestring(contact_id)},"personalization":{values}}}'


def utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def plan_batches(
    rows: Iterable[AudienceRow | asyncpg.Record],
    batch_size: int,
    *,
    more_may_follow: bool = False,
    max_bytes: int = RECIPIENTS_MAX_BYTES,
) -> list[PlannedBatch]:
    """Batches of at most ``batch_size`` recipients and ``max_bytes`` of recipients' JSON
    (each recipient's object and a comma), one bucket each. When the page was full
    (``more_may_follow``), a short last batch is left for the next page, which starts
    after the last batch planned here, so batches are not cut short at page boundaries."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    batches: list[PlannedBatch] = []
    current: list[str] = []
    current_bucket, last_id, size = -1, "", 0
    for bucket, contact_id, personalization in rows:
        recipient = recipient_json(contact_id, personalization)
        grows = utf8_length(recipient) + 1  # and a comma
        if current and (
            bucket != current_bucket or len(current) >= batch_size or size + grows > max_bytes
        ):
            batches.append(PlannedBatch(current_bucket, tuple(current), (current_bucket, last_id)))
            current, size = [], 0
        current.append(recipient)
        current_bucket, last_id = bucket, contact_id
        size += grows
    if current:
        batches.append(PlannedBatch(current_bucket, tuple(current), (current_bucket, last_id)))
    if more_may_follow and len(batches) > 1 and len(batches[-1].recipients) < batch_size:
        batches.pop()
    return batches


def encode_batch(envelope: SendBatch, batch: PlannedBatch) -> bytes:
    """The SendBatch event's JSON: ``envelope``'s fields as pydantic writes them (it is
    built with ``model_construct``, its own recipients left empty), then the batch's."""
    fields = envelope.model_dump(mode="json", exclude={"recipients"})
    fields["recipients"] = orjson.Fragment(f"[{','.join(batch.recipients)}]".encode())
    return orjson.dumps(fields)
