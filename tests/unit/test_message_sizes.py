"""One Kafka message size everywhere: producers, topics and the broker agree, so a batch
the scheduler plans is never refused by the broker after the producer accepted it."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from services.delivery.adapters import outcome_parts, outcomes_message
from shared.events import BatchDelivered, RecipientOutcome
from shared.kafka import durable_producer
from shared.topics import ALL_TOPICS, MAX_MESSAGE_BYTES

REPO = Path(__file__).resolve().parents[2]


def test_every_topic_declares_the_contract_message_size() -> None:
    for topic in ALL_TOPICS:
        assert topic.configs()["max.message.bytes"] == str(MAX_MESSAGE_BYTES), topic.name


async def test_the_producers_allow_exactly_the_contract_message_size() -> None:
    producer = durable_producer("127.0.0.1:1", "test")
    assert producer._max_request_size == MAX_MESSAGE_BYTES


def test_the_local_broker_and_the_compose_broker_use_the_same_size() -> None:
    stack = (REPO / "deploy/local/stack.sh").read_text()
    assert re.findall(r"^message\.max\.bytes=(\d+)$", stack, re.M) == [str(MAX_MESSAGE_BYTES)]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    kafka_env = compose["services"]["kafka"]["environment"]
    assert int(kafka_env["KAFKA_MESSAGE_MAX_BYTES"]) == MAX_MESSAGE_BYTES


def test_the_delivery_workers_producer_allows_the_same_size() -> None:
    from services.delivery.app import app

    assert app.conf.producer_max_request_size == MAX_MESSAGE_BYTES


def _batch_outcomes(ids: list[str], reason: str | None) -> BatchDelivered:
    return BatchDelivered(
        event_id="delivered-7-3", job_id=7, batch_seq=3, content_id="c", is_test=False,
        outcomes=[
            RecipientOutcome(contact_id=c, outcome="skipped" if reason else "delivered",
                             reason=reason)
            for c in ids
        ],
    )  # fmt: skip


def test_outcomes_of_a_huge_batch_are_cut_into_parts_that_fit_the_broker() -> None:
    ids = [f"{n:05d}" + "é" * 400 for n in range(5000)]  # 5,000 ids of 805 bytes
    parts = outcome_parts(_batch_outcomes(ids, "personalization_failed"))
    assert len(parts) > 1
    assert all(len(outcomes_message(p)) <= MAX_MESSAGE_BYTES for p in parts)
    assert [o.contact_id for p in parts for o in p.outcomes] == ids
    assert [p.event_id for p in parts][:2] == ["delivered-7-3", "delivered-7-3-1"]
    # a retry whose outcomes differ (duplicates now) is cut at the same places, so the
    # statistics, applied once per event id, count each recipient once
    again = outcome_parts(_batch_outcomes(ids, "duplicate"))
    assert [[o.contact_id for o in p.outcomes] for p in again] == [
        [o.contact_id for o in p.outcomes] for p in parts
    ]


def test_an_ordinary_batch_is_one_event_as_before() -> None:
    result = _batch_outcomes([f"c{n}" for n in range(1000)], None)
    assert outcome_parts(result) == [result]
