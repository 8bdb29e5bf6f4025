"""Request bodies of the webhook calls (docs/api.md, "Webhooks")."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from services.publisher import limits
from services.publisher.fields import Strict
from shared.http_limits import BIGINT_MAX

EventType = Literal["delivered", "skipped", "engaged", "withdrawn"]
Url = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(limits.text)]
RowId = Annotated[int, Field(ge=1, le=BIGINT_MAX)]


class CreateWebhook(Strict):
    url: Url
    events: list[EventType] = Field(min_length=1, max_length=4)
    # attempts before an event is dead-lettered; null: the publisher's setting
    maxAttempts: int | None = Field(default=None, ge=1, le=100)


class UpdateWebhook(Strict):
    url: Url | None = None
    events: list[EventType] | None = Field(default=None, min_length=1, max_length=4)
    enabled: bool | None = None
    maxAttempts: int | None = Field(default=None, ge=1, le=100)


class Replay(Strict):
    # dead letters to send again; null or absent: all of the endpoint's
    ids: list[RowId] | None = Field(default=None, min_length=1, max_length=1000)


class Ping(Strict):
    pass
