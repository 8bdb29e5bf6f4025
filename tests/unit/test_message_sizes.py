"""One Kafka message size everywhere: producers, topics and the broker agree, so a batch
the scheduler plans is never refused by the broker after the producer accepted it."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

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
