"""Every topic of the contract has a producer and a consumer in this codebase (or, for
the two upstream topics, is consumed here and produced by the customer's systems)."""

from __future__ import annotations

import ast
from pathlib import Path

from shared import topics

REPO = Path(__file__).resolve().parents[2]
CONSTANTS = {
    name: value.name for name, value in vars(topics).items() if isinstance(value, topics.Topic)
}
UPSTREAM = {topics.CONTACTS.name, topics.SEND_REQUESTS.name}  # DESIGN: upstream -> publisher
PRODUCE = {"send", "send_and_wait", "send_dead_letter"}
CONSUME = {"AIOKafkaConsumer", "topic", "make", "TopicPartition"}


def _topic_of(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and node.attr == "name" and isinstance(node.value, ast.Name):
        return CONSTANTS.get(node.value.id)
    return None


def _uses() -> tuple[set[str], set[str]]:
    produced, consumed = set(), set()
    for path in (REPO / "services").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            topics_here = {t for t in map(_topic_of, node.args) if t}
            if name == "send_dead_letter":
                topics_here.add(topics.DLQ.name)
            if name in PRODUCE:
                produced |= topics_here
            if name in CONSUME:
                consumed |= topics_here
    return produced, consumed


def test_every_topic_is_produced_and_consumed() -> None:
    produced, consumed = _uses()
    for topic in topics.ALL_TOPICS:
        assert topic.name in consumed, f"nothing consumes {topic.name}"
        assert topic.name in produced | UPSTREAM, f"nothing produces {topic.name}"
