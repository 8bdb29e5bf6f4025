"""Request bodies of /contacts: one contact, or one line of a batch import."""

from __future__ import annotations

from pydantic import Field

from services.publisher.fields import (
    Attributes,
    ContactId,
    Strict,
    Subscriptions,
)


class UpsertContact(Strict):
    attributes: Attributes = Field(default_factory=dict)
    subscriptions: Subscriptions = Field(default_factory=dict)


class ContactLine(Strict):
    """One line of a batch contact import (``application/x-ndjson``)."""

    contactId: ContactId
    attributes: Attributes = Field(default_factory=dict)
    subscriptions: Subscriptions = Field(default_factory=dict)
