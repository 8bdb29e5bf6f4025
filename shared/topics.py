"""Kafka topic names and partition counts: part of the contract between services."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

# The largest Kafka message, in bytes: ONE number for the producers' max_request_size
# (shared/kafka.py, faust's producer_max_request_size), every topic's max.message.bytes
# (below) and the broker's message.max.bytes (deploy/local/stack.sh, docker-compose.yml;
# tests/unit/test_message_sizes.py checks that they agree).
MAX_MESSAGE_BYTES = 1024 * 1024
# What an event's value may take of it: the rest is the key and the record's framing.
MAX_EVENT_BYTES = MAX_MESSAGE_BYTES - 1024
# What a SendBatch's envelope (everything but its recipients: options with the
# personalization defaults, app keys) may take; the scheduler fills the rest with
# recipients, the publisher refuses a send whose envelope is larger.
BATCH_ENVELOPE_BYTES = 256 * 1024


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    # Kafka topic configs (retention etc.), applied at creation and to existing topics by
    # ``pigeonhole kafka create-topics``.
    config: tuple[tuple[str, str], ...] = ()

    def configs(self) -> dict[str, str]:
        """Every config of the topic: its own, plus the contract's message size."""
        return {"max.message.bytes": str(MAX_MESSAGE_BYTES), **dict(self.config)}


# A SendBatch stays replayable (a consumer group reset, offsets expired) while it is on
# pigeonhole.sends: retention.ms, plus up to one segment.ms, since Kafka deletes whole
# closed segments. The inbox rows that make a replay a duplicate are kept at least that
# long after delivery (services/scheduler/purge.py uses SENDS_REPLAY_WINDOW_MS).
SENDS_RETENTION_MS = 7 * 24 * 3600 * 1000
SENDS_SEGMENT_MS = 24 * 3600 * 1000
SENDS_REPLAY_WINDOW_MS = SENDS_RETENTION_MS + SENDS_SEGMENT_MS
SENDS = Topic(
    "pigeonhole.sends",
    partitions=12,
    config=(("retention.ms", str(SENDS_RETENTION_MS)), ("segment.ms", str(SENDS_SEGMENT_MS))),
)
DELIVERIES = Topic("pigeonhole.deliveries", partitions=6)
ENGAGEMENT = Topic("pigeonhole.engagement", partitions=6)
CONTACTS = Topic("pigeonhole.contacts", partitions=6)
SEND_REQUESTS = Topic("pigeonhole.send-requests", partitions=3)
DLQ = Topic("pigeonhole.dlq", partitions=1, config=(("retention.ms", str(30 * 24 * 3600 * 1000)),))

ALL_TOPICS: tuple[Topic, ...] = (SENDS, DELIVERIES, ENGAGEMENT, CONTACTS, SEND_REQUESTS, DLQ)

# Recipients are bucketed by a stable hash of the contact id; the bucket decides the
# partition of pigeonhole.sends, so all messages for one contact travel one partition in
# order. Changing this number re-routes contacts: treat it as part of the wire contract.
BUCKETS = 256


def bucket_of(contact_id: str) -> int:
    """The stable partition bucket of a contact (CRC-32 of its id, modulo BUCKETS)."""
    return zlib.crc32(contact_id.encode()) % BUCKETS


def partition_of(bucket: int, partitions: int) -> int:
    """The partition of pigeonhole.sends that carries a bucket."""
    return bucket % partitions
