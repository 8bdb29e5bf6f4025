"""Request bodies of in-app content (exactly as the seed writes them) and App Inbox messages."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.publisher.fields import (
    Formulas,
    Personalization,
    Strict,
    Tag,
)
from shared.personalization.locales import LOCALE_TAG

# A BCP 47 language tag: `fr`, `fr-CA`, `zh-Hant-TW` (docs/api.md, "Locales").
LocaleTag = Annotated[str, StringConstraints(pattern=LOCALE_TAG, max_length=35)]
MAX_LOCALES = 50


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
    # 0-10: the phone home lists pending in-app messages highest first, then newest
    priority: int | None = Field(default=None, ge=0, le=10)
    # per locale, the `content` fields that replace every platform template's
    locales: dict[LocaleTag, InAppFields] = Field(default_factory=dict, max_length=MAX_LOCALES)


class InboxLocale(Strict):
    """The fields of an App Inbox message a locale variant replaces."""

    title: str | None = Field(default=None, min_length=1, max_length=500)
    text: str | None = Field(default=None, min_length=1, max_length=5000)
    url: str | None = Field(default=None, max_length=2000)
    image: str | None = Field(default=None, max_length=2000)
    logo: str | None = Field(default=None, max_length=2000)


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
    locales: dict[LocaleTag, InboxLocale] = Field(default_factory=dict, max_length=MAX_LOCALES)
