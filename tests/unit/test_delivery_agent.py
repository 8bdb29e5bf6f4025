"""The delivery agent reads a SendBatch's job id without decoding the batch (to keep one
partition's order between jobs while one job's batches go side by side)."""

from __future__ import annotations

from datetime import UTC, datetime

from services.delivery.agents import job_of
from shared.events import Recipient, SendBatch, SendOptions


def batch(job_id: int, personalization: dict[str, object]) -> bytes:
    return SendBatch(
        job_id=job_id, batch_seq=3, bucket=7, content_id="c", content_kind="inapp",
        app_keys=["a"], options=SendOptions(), launched_at=datetime.now(UTC),
        recipients=[Recipient(contact_id="x", personalization=personalization)],
    ).model_dump_json().encode()  # fmt: skip


def test_the_job_id_is_the_envelopes_even_when_a_recipient_names_one() -> None:
    assert job_of(batch(42, {"job_id": 7})) == 42
    assert job_of(batch(-(2**63), {})) == -(2**63)


def test_no_job_id_found_is_none() -> None:
    assert job_of(None) is None
    assert job_of(b"") is None
    assert job_of(b'{"job_id": "not a batch"') is None
    assert job_of(b"\xff\x00 garbage") is None
