"""Request bodies of the management API, exactly as the seed documents write them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from services.publisher import limits
from services.publisher.content import url_policy
from shared.http_limits import BIGINT_MAX


def _contact_id_text(value: Any) -> Any:
    """The seed sends numbers (13507); every contact id is kept as its decimal text."""
    if isinstance(value, bool):
        raise ValueError("contactId must be a string or an integer")
    return str(value) if isinstance(value, int) else value


ContactId = Annotated[
    str,
    BeforeValidator(_contact_id_text),
    Field(min_length=1, max_length=200),
    AfterValidator(limits.text),
]
Personalization = Annotated[dict[str, Any], AfterValidator(limits.personalization)]
Formulas = Annotated[dict[str, str], AfterValidator(limits.formulas)]
Attributes = Annotated[dict[str, Any], AfterValidator(limits.attributes)]
Subscriptions = Annotated[dict[str, bool], AfterValidator(limits.subscriptions)]
Tag = Annotated[str, Field(min_length=1, max_length=100)]
AppKey = Annotated[str, Field(min_length=1, max_length=100)]
SourceId = Annotated[int, Field(ge=1, le=BIGINT_MAX)]


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
    personalizationDefaults: Personalization = Field(default_factory=dict)
    personalizationFormulas: Formulas = Field(default_factory=dict)
    payload: InAppPayload
    # Pigeonhole extensions (optional): operator name, subscription category, tags, TTL.
    name: str | None = Field(default=None, max_length=200)
    category: str | None = Field(default=None, max_length=100)
    tags: list[Tag] = Field(default_factory=list, max_length=50)
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
    personalization: Personalization = Field(default_factory=dict)


class CreateSend(Strict):
    channelQualifiers: list[AppKey] = Field(min_length=1, max_length=50)
    content: SendContent
    personalizationDefaults: Personalization = Field(default_factory=dict)
    contacts: list[SendContact] = Field(min_length=1, max_length=limits.MAX_RECIPIENTS)


class UpsertContact(Strict):
    attributes: Attributes = Field(default_factory=dict)
    subscriptions: Subscriptions = Field(default_factory=dict)


FrequencyWindow = Literal["perMinute", "perHour", "perDay", "perWeek", "perMonth"]


class FrequencyLimits(Strict):
    perMinute: int | None = Field(default=None, ge=1)
    perHour: int | None = Field(default=None, ge=1)
    perDay: int | None = Field(default=None, ge=1)
    perWeek: int | None = Field(default=None, ge=1)
    perMonth: int | None = Field(default=None, ge=1)


def _deep_link_scheme(value: str) -> str:
    scheme = value.lower()
    if (problem := url_policy.deep_link_problem(scheme)) is not None:
        raise ValueError(problem)
    return scheme


DeepLinkScheme = Annotated[str, Field(max_length=32), AfterValidator(_deep_link_scheme)]


class CreateApp(Strict):
    name: str = Field(min_length=1, max_length=200)
    frequencyLimits: FrequencyLimits = Field(default_factory=FrequencyLimits)
    nextSyncAfterSeconds: int = Field(default=900, ge=0, le=86400)
    # Content may link to these schemes (``myapp`` for myapp://…) besides http(s).
    deepLinkSchemes: list[DeepLinkScheme] = Field(default_factory=list, max_length=20)


class UpdateApp(Strict):
    """``PATCH /apps/{key}``: the fields given replace the app's."""

    deepLinkSchemes: list[DeepLinkScheme] | None = Field(default=None, max_length=20)


class CreateInboxMessage(Strict):
    """An App Inbox message (app-inbox-cdp.txt): ``name`` is seen by operators only."""

    name: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=500)
    text: str = Field(min_length=1, max_length=5000)
    url: str | None = Field(default=None, max_length=2000)
    openInNewTab: bool = False
    # An uploaded image's URL (POST /media), any http(s) URL, or a merge tag.
    image: str | None = Field(default=None, max_length=2000)
    logo: str | None = Field(default=None, max_length=2000)
    category: str | None = Field(default=None, max_length=100)
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    ttlSeconds: int | None = Field(default=None, ge=1, le=366 * 86400)
    personalizationDefaults: Personalization = Field(default_factory=dict)
    personalizationFormulas: Formulas = Field(default_factory=dict)


class ContactLine(Strict):
    """One line of a batch contact import (``application/x-ndjson``)."""

    contactId: ContactId
    attributes: Attributes = Field(default_factory=dict)
    subscriptions: Subscriptions = Field(default_factory=dict)


class CreateSendJob(Strict):
    """``POST /channels/push/sendjobs``: published content to a contact source (seed)."""

    contactSourceId: SourceId
    campaignName: str | None = Field(default=None, max_length=200)
    messageName: str | None = Field(default=None, max_length=200)
    appKeys: list[AppKey] = Field(min_length=1, max_length=50)
    content: SendContent
    personalizationDefaults: Personalization = Field(default_factory=dict)
    scheduledDate: AwareDatetime | None = None


class Batching(Strict):
    recipientsPerBatch: int = Field(default=1000, ge=1, le=5000)
    pauseSeconds: float = Field(default=0, ge=0, le=3600)


class CreateCampaign(Strict):
    """A campaign: content to ``include`` minus ``exclude`` contact sources, in batches,
    started now (``startNow``), at ``startAt`` (with its time zone), or later by
    ``POST /campaigns/{id}/start`` (neither given: a draft)."""

    name: str = Field(min_length=1, max_length=200)
    content: SendContent
    include: list[SourceId] = Field(min_length=1, max_length=50)
    exclude: list[SourceId] = Field(default_factory=list, max_length=50)
    appKeys: list[AppKey] = Field(min_length=1, max_length=50)
    personalizationDefaults: Personalization = Field(default_factory=dict)
    batching: Batching = Field(default_factory=Batching)
    usingAppFrequency: bool = False
    startNow: bool = False
    startAt: AwareDatetime | None = None


class StartCampaign(Strict):
    startAt: AwareDatetime | None = None


class TestSend(Strict):
    """Send content to a few contacts, marked as a test and kept out of statistics."""

    contactIds: list[ContactId] = Field(min_length=1, max_length=100)
    appKeys: list[AppKey] = Field(min_length=1, max_length=50)
    personalizationDefaults: Personalization = Field(default_factory=dict)


class PutTagCap(Strict):
    """At most ``maxCount`` messages per contact per rolling ``periodSeconds``, counted
    over every send whose content carries the tag."""

    maxCount: int = Field(ge=1, le=100_000)
    periodSeconds: int = Field(ge=1, le=31 * 86400)
