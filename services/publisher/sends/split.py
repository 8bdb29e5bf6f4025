"""A/B splits and holdouts of a send or campaign (docs/api.md, "A/B tests and holdout"):
checked when the send is created, then carried in its options to delivery, which assigns
each recipient (shared/ab_split.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import asyncpg

from services.publisher.content import repository as content_repository
from services.publisher.content import url_policy
from services.publisher.errors import field_error
from services.publisher.sends.models import Split, VariantSpec
from shared.ab_split import HOLDOUT, SLOTS, basis_points
from shared.events import Variant

if TYPE_CHECKING:
    from services.publisher.sends.use_cases import ResolvedMessage


async def resolve_split(
    pool: asyncpg.Pool, message: ResolvedMessage, split: Split
) -> ResolvedMessage:
    """The message with its variants checked (a holdout alone makes one variant,
    ``default``, of the send's content) and their contents' deep links added."""
    specs = split.variants
    if not specs and not split.holdoutPercent:
        return message
    if not specs:
        specs = [VariantSpec(name="default", percent=100 - split.holdoutPercent)]
    _check_shares(specs, split.holdoutPercent)
    deep_links = dict(message.deep_links)
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs):
        content_id = spec.contentId or message.content_id
        if content_id in seen:
            raise field_error(
                f"variants.{i}.contentId", f"variant {seen[content_id]} sends the same content"
            )
        seen[content_id] = i
        if spec.contentId:
            deep_links.update(await _variant_links(pool, message.kind, spec.contentId, i))
    variants = tuple(Variant(name=s.name, percent=s.percent, content_id=s.contentId) for s in specs)
    return replace(
        message, variants=variants, holdout_percent=split.holdoutPercent, deep_links=deep_links
    )


def _check_shares(specs: list[VariantSpec], holdout: float) -> None:
    names = [s.name.casefold() for s in specs]
    if HOLDOUT in names:
        raise field_error(f"variants.{names.index(HOLDOUT)}.name", "'holdout' is reserved")
    if len(set(names)) != len(names):
        raise field_error("variants", "variant names must differ")
    total = sum(basis_points(s.percent) for s in specs) + basis_points(holdout)
    if total != SLOTS:
        raise field_error(
            "variants",
            f"the variants' percent and holdoutPercent must add up to 100 (they add up to "
            f"{total / 100:g})",
        )


async def _variant_links(
    pool: asyncpg.Pool, kind: str, content_id: str, index: int
) -> dict[str, str]:
    row = await content_repository.get_content(pool, content_id)
    if row is None or row["kind"] != kind:
        raise field_error(
            f"variants.{index}.contentId", f"no {kind} content with id {content_id!r}"
        )
    links = url_policy.check(dict(row["body"]))[1]
    return {f"variants.{index}:{path}": scheme for path, scheme in links.items()}
