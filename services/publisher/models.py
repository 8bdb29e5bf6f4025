"""Request bodies of the management API, exactly as the seed documents write them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

ContactId = int | str


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class InAppAction(Strict):
    type: str | None = None
    value: str | None = None


class InAppFields(BaseModel):
    """``content`` of a template: the seed's fields plus template-specific extras
    (``orientation``, ``image``, ``video`` …), which are kept as written."""

    model_config = ConfigDict(extra="allow")

    mainImage: str | None = None
    title: str | None = None
    text: str | None = None
    color: str | None = None
    icon: str | None = None
    action: InAppAction | None = None


class InAppTemplateContent(Strict):
    rules: list[str] = Field(default_factory=list)
    template: str | None = None
    maxViews: int | None = Field(default=None, ge=1, le=1000)
    content: InAppFields | None = None


class InAppPayload(Strict):
    gcm: InAppTemplateContent | None = None
    apns: InAppTemplateContent | None = None
    web: InAppTemplateContent | None = None


class CreateInAppContent(Strict):
    personalizationDefaults: dict[str, Any] = Field(default_factory=dict)
    personalizationFormulas: dict[str, str] = Field(default_factory=dict)
    payload: InAppPayload
    # Pigeonhole extensions (optional): operator name, subscription category, tags, TTL.
    name: str | None = Field(default=None, max_length=200)
    category: str | None = Field(default=None, max_length=100)
    tags: list[str] = Field(default_factory=list, max_length=50)
    ttlSeconds: int | None = Field(default=None, ge=1, le=366 * 86400)


class InAppMessage(Strict):
    inAppContentId: str = Field(min_length=1, max_length=64)
    maxViews: int | None = Field(default=None, ge=1, le=1000)
    expirationDate: AwareDatetime | None = None


class InboxMessage(Strict):
    inboxContentId: str = Field(min_length=1, max_length=64)
    expirationDate: AwareDatetime | None = None


class SendContent(Strict):
    inAppMessage: InAppMessage | None = None
    inboxMessage: InboxMessage | None = None


class SendContact(Strict):
    contactId: ContactId
    personalization: dict[str, Any] = Field(default_factory=dict)

    @field_validator("contactId")
    @classmethod
    def _contact_id(cls, value: ContactId) -> ContactId:
        if isinstance(value, str) and not (0 < len(value) <= 200):
            raise ValueError("contactId must be 1..200 characters")
        return value


class CreateSend(Strict):
    channelQualifiers: list[str] = Field(min_length=1, max_length=50)
    content: SendContent
    personalizationDefaults: dict[str, Any] = Field(default_factory=dict)
    contacts: list[SendContact] = Field(min_length=1, max_length=10_000)


class UpsertContact(Strict):
    attributes: dict[str, Any] = Field(default_factory=dict)
    subscriptions: dict[str, bool] = Field(default_factory=dict)


FrequencyWindow = Literal["perMinute", "perHour", "perDay", "perWeek", "perMonth"]


class FrequencyLimits(Strict):
    perMinute: int | None = Field(default=None, ge=1)
    perHour: int | None = Field(default=None, ge=1)
    perDay: int | None = Field(default=None, ge=1)
    perWeek: int | None = Field(default=None, ge=1)
    perMonth: int | None = Field(default=None, ge=1)


class CreateApp(Strict):
    name: str = Field(min_length=1, max_length=200)
    frequencyLimits: FrequencyLimits = Field(default_factory=FrequencyLimits)
    nextSyncAfterSeconds: int = Field(default=900, ge=0, le=86400)
