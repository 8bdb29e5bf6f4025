"""docs/asyncapi.yaml is what upstream teams generate producers from: it must be the
document the contract generates, valid AsyncAPI 3.0, and its examples valid messages."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry
from referencing.jsonschema import DRAFT7

from shared import asyncapi, topics
from shared.asyncapi.__main__ import main as check_document
from shared.asyncapi.flows import FLOWS

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "tests" / "schemas"
DOC_URI = "urn:pigeonhole:asyncapi"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(asyncapi.DOCUMENT.read_text())
    return loaded


def payload_validator(doc: dict[str, Any], message: str) -> jsonschema.Draft7Validator:
    """Validates against a message's payload schema, its $refs resolved in the document."""
    registry: Registry[Any] = Registry().with_resource(DOC_URI, DRAFT7.create_resource(doc))
    ref = doc["components"]["messages"][message]["payload"]["$ref"]
    return jsonschema.Draft7Validator({"$ref": DOC_URI + ref}, registry=registry)


def test_the_committed_document_is_the_generated_one() -> None:
    assert asyncapi.DOCUMENT.read_text() == asyncapi.render(), "run `make asyncapi`"
    assert check_document(["--check"]) == 0


def test_it_is_valid_asyncapi_3(doc: dict[str, Any]) -> None:
    schema = json.loads((SCHEMAS / "asyncapi-3.0.0.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    assert [e.message for e in validator.iter_errors(doc)] == []
    broken = {**doc, "operations": {"x": {"action": "publish", "channel": {"$ref": "#/x"}}}}
    assert not validator.is_valid(broken)  # the official schema does check operations


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_every_reference_points_into_the_document(doc: dict[str, Any]) -> None:
    for ref in _refs(doc):
        node: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]  # a KeyError names the dangling reference
        assert isinstance(node, dict), ref


def test_every_topic_is_a_channel_that_some_service_produces_and_consumes(
    doc: dict[str, Any],
) -> None:
    by_address = {c["address"]: (cid, c) for cid, c in doc["channels"].items()}
    assert set(by_address) == {t.name for t in topics.ALL_TOPICS}
    for topic in topics.ALL_TOPICS:
        cid, channel = by_address[topic.name]
        assert channel["bindings"]["kafka"]["partitions"] == topic.partitions
        actions = {
            op["action"]
            for op in doc["operations"].values()
            if op["channel"]["$ref"] == f"#/channels/{cid}"
        }
        assert actions == {"send", "receive"}, topic.name


def test_upstream_producers_are_told_the_key_and_the_schema(doc: dict[str, Any]) -> None:
    for operation in ("upstreamProducesContacts", "upstreamProducesSendRequests"):
        ref = doc["operations"][operation]["messages"][0]["$ref"]
        name = ref.rsplit("/", 1)[-1]
        message = doc["components"]["messages"][name]
        assert message["bindings"]["kafka"]["key"]["description"]
        assert "event_id" in doc["components"]["schemas"][name]["properties"]


def test_every_example_is_a_valid_message(doc: dict[str, Any]) -> None:
    flows = {flow.event.__name__: flow for flow in FLOWS}
    for name, message in doc["components"]["messages"].items():
        validator = payload_validator(doc, name)
        assert message["examples"], name
        for example in message["examples"]:
            assert [e.message for e in validator.iter_errors(example["payload"])] == [], name
            flows[name].event.model_validate(example["payload"])  # and the consumer takes it


def test_a_payload_the_consumer_would_refuse_is_invalid(doc: dict[str, Any]) -> None:
    validator = payload_validator(doc, "ContactUpserted")
    good = {"event_id": "c1", "contact_id": "13507", "attributes": {"first_name": "Ann"}}
    assert validator.is_valid(good)
    assert not validator.is_valid({"event_id": "c1"})  # no contact_id
    assert not validator.is_valid({**good, "subscriptions": {"offers": "yes"}})
    assert not validator.is_valid({**good, "colour": "red"})  # unknown fields are refused
    send = payload_validator(doc, "SendRequested")
    assert not send.is_valid({"event_id": "r1", "send": []})


def _topics_in_code(service: str) -> tuple[set[str], set[str]]:
    """The topics a service's code produces to and consumes from (by the topics.py
    constant it names in a producing or consuming call)."""
    names = {n: v.name for n, v in vars(topics).items() if isinstance(v, topics.Topic)}
    produced, consumed = set(), set()
    for path in (REPO / "services" / service).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            call = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            named = {
                names[a.value.id]
                for a in node.args
                if isinstance(a, ast.Attribute)
                and isinstance(a.value, ast.Name)
                and a.value.id in names
            }
            if call == "send_dead_letter":
                produced.add(topics.DLQ.name)
            elif call in {"send", "send_and_wait"}:
                produced |= named
            elif call in {"AIOKafkaConsumer", "topic", "TopicPartition", "TP", "make"}:
                consumed |= named
    return produced, consumed


@pytest.mark.parametrize("service", ["publisher", "scheduler", "delivery", "sync"])
def test_who_produces_and_consumes_each_topic_is_what_the_code_does(service: str) -> None:
    produced, consumed = _topics_in_code(service)
    told_produced = {f.topic.name for f in FLOWS if service in f.producers}
    told_consumed = {f.topic.name for f in FLOWS if service in f.consumers}
    assert (told_produced, told_consumed) == (produced, consumed)
