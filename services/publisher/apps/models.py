"""Request bodies of /apps (frequency limits, deep-link schemes) and /tag-caps."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

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
