"""Request bodies of the key-hygiene calls."""

from __future__ import annotations

from pydantic import Field

from services.publisher.fields import Strict

MAX_OVERLAP_SECONDS = 90 * 86_400


class RotateSecret(Strict):
    # how long the previous secret keeps verifying; 0 retires it at once (a leaked secret)
    overlapSeconds: int = Field(default=86_400, ge=0, le=MAX_OVERLAP_SECONDS)


class PutDeviceRateLimit(Strict):
    # requests a minute per device of this app; null: the sync service's setting
    deviceRequestsPerMinute: int | None = Field(ge=1, le=1_000_000)
