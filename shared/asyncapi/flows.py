"""The topics as the AsyncAPI document tells them: each one's event, key, producers,
consumers and an example. tests/unit/test_asyncapi.py checks who produces and consumes
what against the services' code, and the examples against the schemas."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel

from shared import events, topics

_AT = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
_APP_KEY = "k7Qm2xTz9pLw"


@dataclass(frozen=True)
class Flow:
    """One topic of the contract: its event, its key, who produces and who consumes it."""

    topic: topics.Topic
    event: type[BaseModel]
    key: str
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    example: BaseModel


_OPTIONS = events.SendOptions(max_views=3, personalization_defaults={"First_Name": "Customer"})
_RECIPIENT = events.Recipient(contact_id="13507", personalization={"first_name": "Ann"})
_SEND_BODY = {
    "channelQualifiers": [_APP_KEY],
    "content": {"inAppMessage": {"inAppContentId": "MqU8NG7y", "maxViews": 3}},
    "contacts": [{"contactId": "13507", "personalization": {"first_name": "Ann"}}],
}

FLOWS: tuple[Flow, ...] = (
    Flow(
        topics.SENDS,
        events.SendBatch,
        "the recipients' partition bucket (`bucket`, decimal); the record goes to partition "
        "bucket % partitions, so one contact's messages stay in order",
        ("scheduler",),
        ("delivery",),
        events.SendBatch(
            event_id="9f1c3e7a",
            occurred_at=_AT,
            job_id=42,
            batch_seq=0,
            bucket=topics.bucket_of("13507"),
            content_id="MqU8NG7y",
            content_kind="inapp",
            app_keys=[_APP_KEY],
            options=_OPTIONS,
            launched_at=_AT,
            recipients=[_RECIPIENT],
        ),
    ),
    Flow(
        topics.DELIVERIES,
        events.BatchDelivered,
        "the send job id (`job_id`, decimal)",
        ("delivery",),
        ("publisher",),
        events.BatchDelivered(
            event_id="3b8d0c21",
            occurred_at=_AT,
            job_id=42,
            batch_seq=0,
            content_id="MqU8NG7y",
            outcomes=[
                events.RecipientOutcome(contact_id="13507", outcome="delivered"),
                events.RecipientOutcome(contact_id="2", outcome="skipped", reason="unsubscribed"),
            ],
        ),
    ),
    Flow(
        topics.ENGAGEMENT,
        events.MessageEngaged,
        "the contact id (`contact_id`)",
        ("sync",),
        ("publisher",),
        events.MessageEngaged(
            event_id="e0a4f5d6",
            occurred_at=_AT,
            contact_id="13507",
            message_id="1001",
            job_id=42,
            content_id="MqU8NG7y",
            type="view",
            at=_AT,
        ),
    ),
    Flow(
        topics.CONTACTS,
        events.ContactUpserted,
        "the contact id (`contact_id`), so that one contact's changes are applied in order",
        ("upstream", "sync"),
        ("publisher",),
        events.ContactUpserted(
            event_id="c-13507-1",
            occurred_at=_AT,
            contact_id="13507",
            attributes={"first_name": "Ann", "Customer_Date": "2026-02-01"},
            subscriptions={"offers": True},
        ),
    ),
    Flow(
        topics.SEND_REQUESTS,
        events.SendRequested,
        "the request id (`event_id`)",
        ("upstream",),
        ("publisher",),
        events.SendRequested(event_id="req-0001", occurred_at=_AT, send=_SEND_BODY),
    ),
    Flow(
        topics.DLQ,
        events.DeadLetter,
        "the original record's key (cut to its first bytes when long)",
        ("publisher", "delivery"),
        ("publisher",),
        events.DeadLetter(
            source_topic=topics.CONTACTS.name,
            partition=0,
            offset=17,
            consumer="publisher-contacts",
            error="invalid ContactUpserted: ...",
            key="13507",
            value='{"contact_id": 13507',
            occurred_at=_AT,
        ),
    ),
)

ROLES = {
    "scheduler": "turns send jobs into batches",
    "delivery": "files batches into inboxes (faust worker)",
    "sync": "the device API",
    "publisher": "the management API, its Kafka consumers and the `pigeonhole` command "
    "(`pigeonhole dlq show`, `pigeonhole dlq replay OFFSET…` read the dead letters)",
    "upstream": "the customer's own systems",
}
