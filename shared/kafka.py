"""Kafka helpers shared by the services: producer settings, topic creation, dead letters."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.events import DeadLetter
from shared.topics import ALL_TOPICS, DLQ, Topic

log = logging.getLogger(__name__)


def durable_producer(bootstrap: str, client_id: str) -> AIOKafkaProducer:
    """A producer for hand-offs that must not be lost: acks from all replicas, idempotent."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_request_size=4 * 1024 * 1024,
    )


async def ensure_topics(bootstrap: str, topics: tuple[Topic, ...] = ALL_TOPICS) -> list[str]:
    """Create every contract topic that does not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="pigeonhole-admin")
    await admin.start()
    created: list[str] = []
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        for topic in missing:
            try:
                await admin.create_topics(
                    [
                        NewTopic(
                            name=topic.name,
                            num_partitions=topic.partitions,
                            replication_factor=1,
                            topic_configs=dict(topic.config),
                        )
                    ]
                )
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()
    return created


async def send_dead_letter(
    producer: AIOKafkaProducer,
    *,
    source_topic: str,
    consumer: str,
    error: str,
    key: bytes | None,
    value: bytes | None,
    partition: int | None = None,
    offset: int | None = None,
) -> None:
    """Park an event a consumer could not handle on pigeonhole.dlq, keyed by its original key."""
    letter = DeadLetter(
        source_topic=source_topic,
        partition=partition,
        offset=offset,
        consumer=consumer,
        error=error[:2000],
        key=key.decode(errors="replace") if key is not None else None,
        value=(value or b"").decode(errors="replace"),
    )
    await producer.send_and_wait(DLQ.name, letter.model_dump_json().encode(), key=key)
    log.warning(
        "event sent to dead-letter topic",
        extra={"source_topic": source_topic, "consumer": consumer, "error": error[:300]},
    )
