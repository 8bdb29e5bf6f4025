"""GET /stats: what happened to a campaign, send job, content or tag."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from services.publisher.auth import Principal, require
from services.publisher.errors import ApiError, envelope
from services.publisher.stats import repository as stats
from shared.http_limits import BIGINT_MAX

router = APIRouter(tags=["statistics"])
Reader = Annotated[Principal, Depends(require("stats"))]


@router.get("/stats")
async def get_stats(
    request: Request,
    _: Reader,
    campaignId: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None,
    sendJobId: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None,
    contentId: Annotated[str | None, Query(max_length=64)] = None,
    tag: Annotated[str | None, Query(max_length=100)] = None,
) -> dict[str, Any]:
    """Targeted, delivered, skipped by reason, and messages viewed, clicked, dismissed,
    read and deleted (each message once per kind). Give exactly one filter. Test sends are
    not counted. Figures follow Kafka within about a second."""
    filters: list[tuple[stats.Scope, Any]] = [
        ("campaignId", campaignId), ("sendJobId", sendJobId), ("contentId", contentId),
        ("tag", tag),
    ]  # fmt: skip
    given = [(scope, value) for scope, value in filters if value is not None]
    if len(given) != 1:
        raise ApiError(400, "give exactly one of campaignId, sendJobId, contentId or tag")
    [(scope, value)] = given
    return envelope(await stats.query(request.app.state.pool, scope, value))
