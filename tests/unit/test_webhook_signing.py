"""Webhook signatures, target-URL safety and the events made from Kafka events."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from services.publisher.webhooks.outbox import delivery_events, engagement_events
from services.publisher.webhooks.signing import sign, url_problem, verify
from shared.events import BatchDelivered, MessageEngaged, RecipientOutcome


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    header = sign("whsec_x", b'{"events":[]}', at=1700000000)
    mac = hmac.new(b"whsec_x", b'1700000000.{"events":[]}', hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={mac}"
    assert verify("whsec_x", b'{"events":[]}', header, now=1700000100)
    assert not verify("whsec_x", b'{"events":[1]}', header, now=1700000100)  # body changed
    assert not verify("whsec_x", b'{"events":[]}', header, now=1700000301)  # too old
    assert not verify("whsec_x", b'{"events":[]}', "v1=abc", now=1700000000)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x", "http://localhost:8080/", "https://10.1.2.3/", "http://[::1]/",
        "http://169.254.169.254/latest/meta-data", "http://192.168.0.1/", "http://0.0.0.0/",
        "ftp://example.com/", "example.com/x", "http://user:pw@example.com/", "http://:99999/",
    ],
)  # fmt: skip
def test_unsafe_urls_are_refused_by_default(url: str) -> None:
    assert url_problem(url, allow_private=False) is not None


def test_public_urls_and_allowed_private_ones_pass() -> None:
    assert url_problem("https://hooks.example.com/pigeonhole", allow_private=False) is None
    assert url_problem("http://93.184.216.34:8443/x", allow_private=False) is None
    assert url_problem("http://127.0.0.1:9000/hook", allow_private=True) is None
    assert url_problem("ftp://127.0.0.1/", allow_private=True) is not None


def test_event_ids_are_stable_across_a_replayed_batch() -> None:
    outcomes = [
        RecipientOutcome(contact_id="a", outcome="delivered"),
        RecipientOutcome(contact_id="b", outcome="skipped", reason="unsubscribed"),
    ]
    first = BatchDelivered(job_id=7, batch_seq=0, content_id="c", outcomes=outcomes)
    again = BatchDelivered(job_id=7, batch_seq=0, content_id="c", outcomes=outcomes)
    assert first.event_id != again.event_id
    ids = [e["id"] for _, e in delivery_events(first)]
    assert ids == [e["id"] for _, e in delivery_events(again)] and len(set(ids)) == 2
    [(_, skipped)] = [(j, e) for j, e in delivery_events(first) if e["type"] == "skipped"]
    assert skipped["data"]["reason"] == "unsubscribed"


def test_an_engagement_event_keeps_its_id_and_action() -> None:
    event = MessageEngaged(contact_id="a", message_id="m", job_id=3, content_id="c",
                           type="dismiss", at="2026-01-01T00:00:00Z")  # fmt: skip
    [(job, hook)] = engagement_events(event)
    [(_, again)] = engagement_events(event)
    assert job == 3 and hook["type"] == "engaged" and hook["data"]["action"] == "dismiss"
    assert hook["id"] == again["id"]


def test_an_event_postgresql_cannot_store_is_left_out_alone() -> None:
    from services.publisher.webhooks.outbox import _storable

    assert _storable({"id": "1", "data": {"contactId": "a\x00b"}}) is None
    assert _storable({"id": "2", "data": {"contactId": "\ud800"}}) is None
    assert _storable({"id": "3", "data": {"contactId": "a\\u0000"}}) is not None
