"""Request bodies of /apps (frequency limits, deep-link schemes, subscription categories)
and /tag-caps."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from services.publisher.content import url_policy
from services.publisher.fields import (
    Strict,
)

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


class PutTagCap(Strict):
    """At most ``maxCount`` messages per contact per rolling ``periodSeconds``, counted
    over every send whose content carries the tag."""

    maxCount: int = Field(ge=1, le=100_000)
    periodSeconds: int = Field(ge=1, le=31 * 86400)


MAX_CATEGORIES = 50


class SubscriptionCategory(Strict):
    """A subscription category as devices show it: ``name`` is what content's ``category``
    and a contact's ``subscriptions`` use; ``description`` is for people."""

    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=500)


class PutCategories(Strict):
    """``PUT /apps/{key}/categories``: the list given replaces the app's, in its order."""

    categories: list[SubscriptionCategory] = Field(max_length=MAX_CATEGORIES)

    @field_validator("categories")
    @classmethod
    def _distinct(cls, categories: list[SubscriptionCategory]) -> list[SubscriptionCategory]:
        seen: set[str] = set()
        for category in categories:
            if category.name in seen:
                raise ValueError(f"category {category.name!r} is declared twice")
            seen.add(category.name)
        return categories
