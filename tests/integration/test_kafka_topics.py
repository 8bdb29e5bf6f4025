"""Every contract topic exists with its declared partition count."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer

from shared.settings import CommonSettings
from shared.topics import ALL_TOPICS


async def test_every_contract_topic_exists_with_its_partitions(settings: CommonSettings) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        for topic in ALL_TOPICS:
            partitions = consumer.partitions_for_topic(topic.name)
            if partitions is None:
                await consumer._client.force_metadata_update()  # first look-up of this topic
                partitions = consumer.partitions_for_topic(topic.name)
            assert partitions is not None, f"{topic.name} is missing"
            assert len(partitions) == topic.partitions, topic.name
    finally:
        await consumer.stop()
