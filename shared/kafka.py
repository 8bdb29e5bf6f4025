"""Kafka helpers shared by the services: producer settings, topic creation, dead letters."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from shared.events import DeadLetter
from shared.topics import ALL_TOPICS, DLQ, MAX_MESSAGE_BYTES, Topic

log = logging.getLogger(__name__)
# JSON escaping may grow a value up to 6-fold (\\u0000): this many characters always fit.
DEAD_LETTER_VALUE_CHARS = MAX_MESSAGE_BYTES // 8
DEAD_LETTER_KEY_BYTES = 4096


def durable_producer(bootstrap: str, client_id: str) -> AIOKafkaProducer:
    """A producer for hand-offs that must not be lost: acks from all replicas, idempotent.

    No linger: a batch is sent as soon as the producer's sender runs, so a
    ``send_and_wait`` never waits for a timer. Records still travel together: everything
    sent while a request is in flight (one per broker, since the producer is idempotent),
    or sent without yielding to the event loop, goes in the next request. No compression:
    the events go over loopback or a LAN, and gzip (the only codec installed) costs the
    producer about 0.7 ms per 1,000-recipient SendBatch, more again to the broker and the
    consumer, on the cores the stack shares."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=0,
        max_request_size=MAX_MESSAGE_BYTES,
    )


async def ensure_topics(bootstrap: str, topics: tuple[Topic, ...] = ALL_TOPICS) -> list[str]:
    """Create every contract topic that does not exist yet, and set the contract's configs
    (message size, retention) on the ones that do; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="pigeonhole-admin")
    await admin.start()
    created: list[str] = []
    try:
        existing = set(await admin.list_topics())
        for topic in topics:
            if topic.name in existing or not await _create(admin, topic):
                await _set_configs(admin, topic)
            else:
                created.append(topic.name)
    finally:
        await admin.close()
    return created


async def _create(admin: AIOKafkaAdminClient, topic: Topic) -> bool:
    new = NewTopic(
        name=topic.name, num_partitions=topic.partitions, replication_factor=1,
        topic_configs=topic.configs(),
    )  # fmt: skip
    try:
        await admin.create_topics([new])
        return True
    except TopicAlreadyExistsError:
        return False


async def _set_configs(admin: AIOKafkaAdminClient, topic: Topic) -> None:
    """AlterConfigs replaces a topic's whole dynamic config: the contract's is complete."""
    resource = ConfigResource(ConfigResourceType.TOPIC, topic.name, topic.configs())
    for response in await admin.alter_configs([resource]):
        for error_code, message, *_ in response.resources:
            if error_code:
                raise RuntimeError(f"could not configure {topic.name}: {message} ({error_code})")


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
    """Park an event a consumer could not handle on pigeonhole.dlq, keyed by its original key.
    A value too large to fit beside the error is cut (the letter says so and keeps its size):
    a dead letter must always be producible."""
    text = (value or b"").decode(errors="replace")
    if len(text) > DEAD_LETTER_VALUE_CHARS:
        error = f"[value cut to {DEAD_LETTER_VALUE_CHARS} of {len(text)} characters] {error}"
        text = text[:DEAD_LETTER_VALUE_CHARS]
    letter = DeadLetter(
        source_topic=source_topic,
        partition=partition,
        offset=offset,
        consumer=consumer,
        error=error[:2000],
        key=key[:DEAD_LETTER_KEY_BYTES].decode(errors="replace") if key is not None else None,
        value=text,
    )
    await producer.send_and_wait(
        DLQ.name, letter.model_dump_json().encode(), key=key[:DEAD_LETTER_KEY_BYTES] if key else key
    )
    log.warning(
        "event sent to dead-letter topic",
        extra={"source_topic": source_topic, "consumer": consumer, "error": error[:300]},
    )
