"""Request bodies of direct sends (``/channels/push/sends``, seed payloads) and their content."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from services.publisher import limits
from services.publisher.fields import (
    AppKey,
    ContactId,
    Personalization,
    Strict,
)


class InAppMessage(Strict):
    inAppContentId: str = Field(min_length=1, max_length=64)
    maxViews: int | None = Field(default=None, ge=1, le=1000)
    expirationDate: AwareDatetime | None = None
    # Pigeonhole extension: 0-10, highest shown first; overrides the content's priority
    priority: int | None = Field(default=None, ge=0, le=10)


class InboxMessage(Strict):
    inboxContentId: str = Field(min_length=1, max_length=64)
    expirationDate: AwareDatetime | None = None


class SendContent(Strict):
    inAppMessage: InAppMessage | None = None
    inboxMessage: InboxMessage | None = None


class VariantSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    percent: float = Field(gt=0, le=100)
    # another content of the same kind; none: the send's own content
    contentId: str | None = Field(default=None, min_length=1, max_length=64)


class Split(Strict):
    """Fields a send, a send job or a campaign may carry to split its recipients
    (services/publisher/sends/split.py)."""

    variants: list[VariantSpec] = Field(default_factory=list, max_length=10)
    holdoutPercent: float = Field(default=0, ge=0, lt=100)


class SendContact(Strict):
    contactId: ContactId
    personalization: Personalization = Field(default_factory=dict)


class CreateSend(Split):
    channelQualifiers: list[AppKey] = Field(min_length=1, max_length=50)
    content: SendContent
    personalizationDefaults: Personalization = Field(default_factory=dict)
    contacts: list[SendContact] = Field(min_length=1, max_length=limits.MAX_RECIPIENTS)
