"""The faust App and nothing else (agents import it, never the reverse)."""

from __future__ import annotations

import socket

import faust

from shared.observability import logging_dict_config
from shared.settings import DeliverySettings
from shared.topics import MAX_MESSAGE_BYTES


def create_app(settings: DeliverySettings) -> faust.App:
    return faust.App(
        settings.consumer_group,
        broker=f"kafka://{settings.kafka_bootstrap}",
        key_serializer="raw",
        value_serializer="raw",
        store="memory://",
        datadir=settings.data_dir,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_max_request_size=MAX_MESSAGE_BYTES,  # the one Kafka message size
        # A crashed worker's partitions move to the others (or to its replacement) after
        # the session timeout; faust's default of 60 s stops delivery for a minute.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        broker_rebalance_timeout=20.0,
        # Which process holds which partitions, in the group's description (several
        # workers per host each have their own web port; tests/e2e/test_delivery_workers.py)
        broker_client_id=f"pigeonhole-delivery-{socket.gethostname()}-{settings.web_port}",
        web_host=settings.web_host,
        web_port=settings.web_port,
        logging_config=logging_dict_config("delivery", settings.log_level),
        loghandlers=[],
    )


settings = DeliverySettings()
app = create_app(settings)
