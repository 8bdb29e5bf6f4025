"""The AsyncAPI 3.0 document of Pigeonhole's Kafka topics, generated from the contract.

Channels are the topics of ``topics.py``, messages the pydantic models of ``events.py``
(their JSON schemas from ``model_json_schema``, in validation mode: what a consumer
accepts), operations say which service produces and which consumes each topic. Upstream
teams generate producers for ``pigeonhole.contacts`` and ``pigeonhole.send-requests``
from it. ``python -m shared.asyncapi`` (``make asyncapi``) writes ``docs/asyncapi.yaml``;
``--check`` fails when the committed file is not what the contract generates.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml
from pydantic.json_schema import models_json_schema

from shared import topics
from shared.asyncapi.flows import FLOWS, ROLES, Flow

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
HEADER = (
    "# Generated from shared/events.py and shared/topics.py by `make asyncapi`\n"
    "# (python -m shared.asyncapi): do not edit by hand.\n"
)
KAFKA_BINDING = "0.5.0"

INFO = """Every topic of Pigeonhole, the self-hostable backend for in-app and App Inbox messages.

Values are UTF-8 JSON, one event per record, at most {max_event} bytes. Every event but the
dead letter carries `event_id` (consumers are idempotent by it: set it, and reuse it only
to deliver the same event again), `schema_version` and `occurred_at`; fields not in the
schema are refused. A record a consumer cannot decode or handle goes to `pigeonhole.dlq`
with the error, and the consumer goes on. Upstream systems produce to `pigeonhole.contacts`
and `pigeonhole.send-requests`; the other topics can be read by statistics and integrations.
"""


def channel_id(topic: topics.Topic) -> str:
    """``pigeonhole.send-requests`` -> ``sendRequests``."""
    first, *rest = topic.name.removeprefix("pigeonhole.").split("-")
    return first + "".join(word.capitalize() for word in rest)


def _number(value: str) -> int | str:
    return int(value) if value.lstrip("-").isdigit() else value


def _description(flow: Flow) -> str:
    return (
        f"Produced by {', '.join(flow.producers)}; consumed by {', '.join(flow.consumers)}.\n\n"
        f"Key: {flow.key}. {flow.topic.partitions} partition(s)."
    )


def _channel(flow: Flow) -> dict[str, Any]:
    name = flow.event.__name__
    kafka = {
        "partitions": flow.topic.partitions,
        "topicConfiguration": {k: _number(v) for k, v in flow.topic.configs().items()},
        "bindingVersion": KAFKA_BINDING,
    }
    return {
        "address": flow.topic.name,
        "title": flow.topic.name,
        "description": _description(flow),
        "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        "bindings": {"kafka": kafka},
    }


def _message(flow: Flow) -> dict[str, Any]:
    name = flow.event.__name__
    doc = inspect.cleandoc(flow.event.__doc__ or name)
    return {
        "name": name,
        "title": name,
        "summary": doc.splitlines()[0],
        "description": f"{doc}\n\nKey: {flow.key}.",
        "contentType": "application/json",
        "payload": {"$ref": f"#/components/schemas/{name}"},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": flow.key},
                "bindingVersion": KAFKA_BINDING,
            }
        },
        "examples": [
            {
                "name": f"{channel_id(flow.topic)}Example",
                "summary": f"A {name} as produced to {flow.topic.name}",
                "payload": flow.example.model_dump(mode="json", exclude_none=True),
            }
        ],
    }


def _operations(flow: Flow) -> dict[str, dict[str, Any]]:
    cid, name = channel_id(flow.topic), flow.event.__name__
    roles = [(s, "send", "Produces") for s in flow.producers]
    roles += [(s, "receive", "Consumes") for s in flow.consumers]
    return {
        f"{service}{verb}{cid[0].upper()}{cid[1:]}": {
            "action": action,
            "channel": {"$ref": f"#/channels/{cid}"},
            "summary": f"{service} {verb.lower()} {name} on {flow.topic.name}",
            "messages": [{"$ref": f"#/channels/{cid}/messages/{name}"}],
            "tags": [{"name": service, "description": ROLES[service]}],
        }
        for service, action, verb in roles
    }


def _schemas() -> dict[str, Any]:
    _, schema = models_json_schema(
        [(flow.event, "validation") for flow in FLOWS],
        ref_template="#/components/schemas/{model}",
    )
    defs: dict[str, Any] = schema["$defs"]
    return dict(sorted(defs.items()))


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document, as a plain dict in a stable order."""
    operations: dict[str, Any] = {}
    for flow in FLOWS:
        operations |= _operations(flow)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Pigeonhole Kafka topics",
            "version": version("pigeonhole"),
            "description": INFO.format(max_event=topics.MAX_EVENT_BYTES),
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "`make up`, and `docker compose` (its host listener): "
                "PLAINTEXT on loopback, no authentication",
            },
            "compose": {
                "host": "kafka:19092",
                "protocol": "kafka",
                "description": "inside the `docker compose` network, where the services connect",
            },
        },
        "channels": {channel_id(flow.topic): _channel(flow) for flow in FLOWS},
        "operations": operations,
        "components": {
            "messages": {flow.event.__name__: _message(flow) for flow in FLOWS},
            "schemas": _schemas(),
        },
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line text (descriptions) as literal blocks, readable in a diff."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def render() -> str:
    """The document as committed in docs/asyncapi.yaml: same contract, same bytes."""
    body = yaml.dump(document(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return HEADER + body
