"""The wire contract: every Kafka event is one of these pydantic models.

Every event carries ``event_id`` (consumers are idempotent by it), ``schema_version`` and
``occurred_at``. Producers serialize with ``model_dump_json``; consumers decode raw bytes
with ``model_validate_json`` and send anything that does not validate to the DLQ.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def _now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1)
    schema_version: int = 1
    occurred_at: datetime = Field(default_factory=_now)


ContentKind = Literal["inapp", "inbox"]
# Numbers stored in PostgreSQL columns: a value beyond them is refused when decoded.
BIGINT_MAX = 2**63 - 1
INT_MAX = 2**31 - 1


class Recipient(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    contact_id: str = Field(min_length=1)
    # Values given for this recipient in the send; highest personalization precedence.
    personalization: dict[str, Any] = Field(default_factory=dict)


class Variant(BaseModel):
    """One arm of an A/B split: a share of the recipients gets ``content_id`` (None: the
    send's own content). docs/api.md, "A/B tests and holdout"."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    percent: float = Field(gt=0, le=100)
    content_id: str | None = Field(default=None, min_length=1, max_length=64)


class SendOptions(BaseModel):
    """Send-level options that delivery applies to every recipient of a batch."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_views: int | None = Field(default=None, ge=1, le=INT_MAX)
    expiration_date: datetime | None = None
    # 0-10, highest shown first; None: the content's (docs/api.md, "Priority")
    priority: int | None = Field(default=None, ge=0, le=10)
    personalization_defaults: dict[str, Any] = Field(default_factory=dict)
    using_app_frequency: bool = False
    is_test: bool = False
    # A/B split (empty: everyone gets the content) and the share held out (gets nothing)
    variants: list[Variant] = Field(default_factory=list, max_length=10)
    holdout_percent: float = Field(default=0, ge=0, lt=100)


# Named as the contract names it, not in the past tense like the other events: it is the
# unit of work delivery consumes. The class name is not on the wire.
class SendBatch(Event):
    """One batch of a send job: scheduler -> delivery on pigeonhole.sends.

    ``batch_seq`` numbers batches within the job; (job_id, batch_seq) is stable across a
    scheduler restart, so a re-sent batch is recognisable.
    """

    job_id: int = Field(ge=-BIGINT_MAX - 1, le=BIGINT_MAX)  # a PostgreSQL bigint
    batch_seq: int = Field(ge=0, le=INT_MAX)
    bucket: int = Field(ge=0, le=INT_MAX)
    content_id: str
    content_kind: ContentKind
    app_keys: list[str] = Field(min_length=1)
    options: SendOptions
    launched_at: datetime
    recipients: list[Recipient] = Field(min_length=1, max_length=5000)


SkipReason = Literal[
    "unknown_contact",
    "expired",
    "unsubscribed",
    "frequency_capped",
    "duplicate",
    "unknown_content",
    "personalization_failed",
    "holdout",
]


class OutcomeDetail(BaseModel):
    """Why one recipient was skipped, for the operator: the merge tag or formula that
    failed (None when no single field is to blame) and the error."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: str | None = Field(default=None, max_length=200)
    error: str = Field(max_length=500)


class RecipientOutcome(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    contact_id: str
    outcome: Literal["delivered", "skipped"]
    reason: SkipReason | None = None
    # Only with ``personalization_failed``; producers leave it out when None
    # (``model_dump_json(exclude_none=True)``) so other outcomes read as before.
    detail: OutcomeDetail | None = None
    # Only in a send split into variants: the recipient's variant name, or "holdout"
    variant: str | None = None


class BatchDelivered(Event):
    """Per-recipient outcomes of one batch: delivery -> stats on pigeonhole.deliveries."""

    job_id: int
    batch_seq: int
    content_id: str
    is_test: bool = False
    outcomes: list[RecipientOutcome]


# view, click, dismiss: reported by devices (POST /v1/events); read, unread, archive, pin,
# delete: App Inbox states set by devices (also through POST /v1/events for read, delete)
EngagementType = Literal["view", "click", "dismiss", "read", "unread", "archive", "pin", "delete"]


class MessageEngaged(Event):
    """A device reported engagement with an inbox entry: sync -> stats."""

    contact_id: str
    message_id: str
    job_id: int
    content_id: str
    type: EngagementType
    at: datetime


class ContactUpserted(Event):
    """An upstream system created or changed a contact: upstream -> publisher."""

    contact_id: str = Field(min_length=1, max_length=200)
    attributes: dict[str, Any] | None = None
    subscriptions: dict[str, bool] | None = None


class DeadLetter(BaseModel):
    """What a consumer could not decode or process, with the error (pigeonhole.dlq)."""

    model_config = ConfigDict(frozen=True)

    source_topic: str
    partition: int | None = None
    offset: int | None = None
    consumer: str
    error: str
    key: str | None = None
    value: str = Field(description="the original value, decoded as UTF-8 with replacement")
    occurred_at: datetime = Field(default_factory=_now)


class SendRequested(Event):
    """An upstream system asks for a send (upstream -> publisher, pigeonhole.send-requests).

    ``send`` is the body of ``POST /channels/push/sends`` exactly as the HTTP API takes it.
    ``event_id`` is the idempotency key: the same request delivered twice makes one send job.
    """

    using_app_frequency: bool = False
    send: dict[str, Any]


class MessagesWithdrawn(Event):
    """Messages of a send taken back from these recipients (withdraw -> webhooks).

    Expected by the publisher's webhooks (docs/webhooks.md, "withdrawn") on its own topic,
    ``pigeonhole.withdrawals``, keyed by job id, one event per withdrawn chunk of up to 5000
    recipients; ``event_id`` stable for a chunk re-sent after a crash.
    """

    job_id: int = Field(ge=1, le=BIGINT_MAX)
    content_id: str
    contact_ids: list[str] = Field(min_length=1, max_length=5000)
    reason: str | None = Field(default=None, max_length=500)
