"""A send is accepted only if every batch the scheduler will make of it fits one Kafka
message (``shared/topics.py``: ``MAX_EVENT_BYTES``).

A SendBatch is an envelope (options with the personalization defaults, app keys, ids)
plus recipients. The envelope may take at most ``BATCH_ENVELOPE_BYTES``; the scheduler
fills the rest with recipients (``services/scheduler/planning.py``) and sends a larger
recipient alone. So a send is refused (400) when its envelope is too large
(``personalizationDefaults``) or when one recipient could not fit even alone
(``contacts.<i>.personalization``); anything accepted can always be produced.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from services.publisher.errors import ApiError
from shared.events import ContentKind, Recipient, SendBatch, SendOptions
from shared.topics import BATCH_ENVELOPE_BYTES, BUCKETS, MAX_EVENT_BYTES

_LARGEST_JOB = 2**63 - 1  # a bigint
_LARGEST_SEQ = 2**31 - 1
_PLACEHOLDER = Recipient(contact_id="x")


def _bytes(recipient: Recipient) -> int:
    return len(recipient.model_dump_json().encode())


def envelope_bytes(
    content_id: str, content_kind: str, app_keys: list[str], options: dict[str, Any]
) -> int:
    """What every batch of the send costs before its recipients (ids at their longest)."""
    skeleton = SendBatch(
        event_id=f"job-{_LARGEST_JOB}-batch-{_LARGEST_SEQ}", job_id=_LARGEST_JOB,
        batch_seq=_LARGEST_SEQ, bucket=BUCKETS - 1, content_id=content_id,
        content_kind=cast(ContentKind, content_kind), app_keys=app_keys,
        options=SendOptions.model_validate(options), launched_at=datetime.now(UTC),
        recipients=[_PLACEHOLDER],
    )  # fmt: skip
    return len(skeleton.model_dump_json().encode()) - _bytes(_PLACEHOLDER)


def check_fits(
    content_id: str,
    content_kind: str,
    app_keys: list[str],
    options: dict[str, Any],
    personalizations: Sequence[tuple[str, dict[str, Any]]] = (),
) -> None:
    """Refuse, naming the field, a send that could not be produced to Kafka.
    ``personalizations``: (contact id, personalization) in the request's order."""
    envelope = envelope_bytes(content_id, content_kind, app_keys, options)
    if envelope > BATCH_ENVELOPE_BYTES:
        raise ApiError(
            400,
            fields={
                "personalizationDefaults": f"too large: the send's options take {envelope} "
                f"bytes, at most {BATCH_ENVELOPE_BYTES} fit beside the recipients"
            },
        )
    room = MAX_EVENT_BYTES - envelope
    too_large = {}
    for i, (contact_id, personalization) in enumerate(personalizations):
        size = _bytes(Recipient(contact_id=contact_id, personalization=personalization))
        if size > room:
            too_large[f"contacts.{i}.personalization"] = (
                f"too large: this recipient takes {size} bytes, at most {room} fit in one "
                f"Kafka message ({MAX_EVENT_BYTES} bytes with the send's options)"
            )
        if len(too_large) >= 20:
            break
    if too_large:
        raise ApiError(400, fields=too_large)
