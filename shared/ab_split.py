"""Which A/B variant a recipient gets (docs/api.md, "A/B tests and holdout").

Deterministic by send job and contact: a redelivered batch, a batch cut differently after
the scheduler resumed, or a second delivery worker all put a contact in the same arm. The
hash spreads contacts evenly over 10,000 slots: the holdout takes the first
``holdout_percent`` of them, then each variant its ``percent``, in the order given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from shared.events import Variant

SLOTS = 10_000
HOLDOUT = "holdout"


def slot(job_id: int, contact_id: str) -> int:
    digest = hashlib.blake2b(f"{job_id}\x1f{contact_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % SLOTS


def basis_points(percent: float) -> int:
    return round(percent * 100)


def assign(
    job_id: int, contact_id: str, variants: Sequence[Variant], holdout_percent: float
) -> Variant | None:
    """The recipient's variant, or None when it is held out."""
    position = slot(job_id, contact_id)
    bound = basis_points(holdout_percent)
    if position < bound:
        return None
    for variant in variants:
        bound += basis_points(variant.percent)
        if position < bound:
            return variant
    return variants[-1] if variants else None  # rounding: the last arm takes the rest
