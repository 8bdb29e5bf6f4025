"""Request bodies of send jobs to contact sources, campaigns and test sends."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from services.publisher.fields import (
    AppKey,
    ContactId,
    Personalization,
    SourceId,
    Strict,
)
from services.publisher.sends.models import SendContent, Split


class CreateSendJob(Split):
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


class CreateCampaign(Split):
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
