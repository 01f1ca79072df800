"""AsyncAPI 3.0 document of the event channels, generated from the event models (credence_common/contracts/events.py)
as the OpenAPI document is generated from the routes (gateway/openapi.py). The gateway serves it at
``/asyncapi.json``; ``python -m credence_common.contracts.asyncapi`` prints it.

One channel per event type: its address is the routing key (the event type) on the publisher's durable topic
exchange ``<service>.events``. The message is the CloudEvents 1.0 envelope in structured mode, the whole event as
the JSON body, with the type's pydantic model (``model_json_schema``) as the schema of ``data``. A test validates
the document against the official AsyncAPI 3.0.0 JSON Schema and fails when an event type of the contract is
missing from it (tests/unit/test_asyncapi.py).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic.json_schema import models_json_schema

from credence_common.contracts.correlation import ENVELOPE_ATTRIBUTE
from credence_common.contracts.docs import example
from credence_common.contracts.envelope import SPEC_VERSION, EventEnvelope, EventPayload, exchange_name, source_for
from credence_common.contracts.events import ALL_EVENTS

ASYNCAPI_VERSION = "3.0.0"
AMQP_BINDING_VERSION = "0.3.0"
SCHEMAS = "#/components/schemas/"
ENVELOPE_SCHEMA = "CloudEventsEnvelope"
PERSISTENT = 2  # AMQP delivery mode: the broker writes the message to disk

# what each CloudEvents attribute of the envelope holds (docs/events.md says the same in its table)
ENVELOPE_ATTRIBUTES = {
    "specversion": "CloudEvents version: always 1.0",
    "id": "Unique event id (UUID), also the AMQP message_id. De-duplicate on it: the same id may arrive again",
    "source": "/credence/<publishing service>",
    "type": "The versioned event type, also the routing key and the AMQP type property",
    "time": "When the state change happened (RFC 3339, UTC)",
    "subject": "What the event is about (candidate id, certificate number, order number); set on every event "
               "Credence publishes",
    "datacontenttype": "Content type of data: always application/json",
    "data": "The payload; its schema is the event type's",
}
CORRELATION_ID = ("CloudEvents extension attribute: the id of the request (or timer run) that caused the event, as "
                  "the gateway answered it in X-Request-Id. For following a request through the logs, not for "
                  "de-duplication; events written before it existed lack it")


def event_version(model: type[EventPayload]) -> str:
    """``credence.certificate.issued.v1`` -> ``v1``: a new version is a new type, published beside the old one."""
    return model.event_type.rsplit(".", 1)[1]


def envelope_schema() -> dict[str, Any]:
    """The CloudEvents envelope every event shares, from ``EventEnvelope``; each message narrows it to its type."""
    schema = EventEnvelope.model_json_schema()
    properties = {name: {**value, "description": ENVELOPE_ATTRIBUTES[name]}
                  for name, value in schema["properties"].items()}
    properties["specversion"]["const"] = SPEC_VERSION
    properties[ENVELOPE_ATTRIBUTE] = {"type": "string", "title": "Correlation Id", "description": CORRELATION_ID}
    # every attribute is written, the defaulted ones too (the outbox stores model_dump_json()); correlationid is
    # not required: events written before it existed lack it
    required = list(schema["properties"])
    return {**schema, "title": "CloudEvents 1.0 envelope (structured mode)", "properties": properties,
            "required": required}


def _message(model: type[EventPayload], payload_ref: str) -> dict[str, Any]:
    return {
        "name": model.event_type,
        "title": model.__name__,
        "summary": model.description,
        "description": (f"A CloudEvents 1.0 envelope, structured mode: the whole event is the JSON body (AMQP "
                        f"content_type application/json, content_encoding utf-8), its `data` a "
                        f"{model.__name__}. Published by {model.publisher} to exchange "
                        f"`{exchange_name(model.publisher)}` with routing key `{model.event_type}`, persistent, "
                        f"after the state change committed (transactional outbox, at least once)."),
        "contentType": "application/json",
        "tags": [{"name": model.publisher}],
        "correlationId": {"location": f"$message.payload#/{ENVELOPE_ATTRIBUTE}", "description": CORRELATION_ID},
        "payload": {"allOf": [
            {"$ref": SCHEMAS + ENVELOPE_SCHEMA},
            {"type": "object", "properties": {
                "type": {"const": model.event_type},
                "source": {"const": source_for(model.publisher)},
                "datacontenttype": {"const": "application/json"},
                "data": {"$ref": payload_ref},
            }},
        ]},
        "bindings": {"amqp": {"contentEncoding": "utf-8", "messageType": model.event_type,
                              "bindingVersion": AMQP_BINDING_VERSION}},
        "examples": [{"name": f"{model.__name__}-example", "payload": example(model)}],
        "x-event-version": event_version(model),
    }


def build_asyncapi(version: str = "0.1.0", events: tuple[type[EventPayload], ...] = ALL_EVENTS) -> dict[str, Any]:
    """The document of ``events`` (the whole contract unless told otherwise)."""
    key_map, schemas = models_json_schema([(model, "validation") for model in events],
                                          ref_template=SCHEMAS + "{model}")
    components_schemas = {ENVELOPE_SCHEMA: envelope_schema(), **schemas.get("$defs", {})}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for model in events:
        name = model.__name__
        messages[name] = _message(model, key_map[(model, "validation")]["$ref"])
        channels[model.event_type] = {
            "address": model.event_type,
            "title": model.event_type,
            "summary": model.description,
            "description": (f"Routing key `{model.event_type}` on the durable topic exchange "
                            f"`{exchange_name(model.publisher)}`. Bind a durable queue of your own to the exchange "
                            f"with this key (or a pattern such as `credence.{model.event_type.split('.')[1]}.#`)."),
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {"amqp": {"is": "routingKey",
                                  "exchange": {"name": exchange_name(model.publisher), "type": "topic",
                                               "durable": True, "autoDelete": False},
                                  "bindingVersion": AMQP_BINDING_VERSION}},
            "x-event-version": event_version(model),
        }
        operations[model.event_type] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{model.event_type}"},
            "title": f"{model.publisher} publishes {model.event_type}",
            "summary": model.description,
            "tags": [{"name": model.publisher}],
            "messages": [{"$ref": f"#/channels/{model.event_type}/messages/{name}"}],
            "bindings": {"amqp": {"deliveryMode": PERSISTENT, "mandatory": False,
                                  "bindingVersion": AMQP_BINDING_VERSION}},
        }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:credence:events",
        "info": {
            "title": "Credence events",
            "version": version,
            "description": ("The events Credence publishes for downstream systems, generated from "
                            "credence_common/contracts/events.py (docs/events.md has the same contract in prose). "
                            "Every event is a CloudEvents 1.0 envelope in structured mode; read it with any "
                            "CloudEvents SDK's structured-mode JSON reader (deploy/registry_subscriber.py uses the "
                            "Python SDK, cloudevents). Delivery is at least once: de-duplicate on `id`. A type's "
                            "payload may gain optional fields within a version; anything else is a new type "
                            "(`.v2`). The HTTP API is described in /openapi.json."),
            "tags": [{"name": publisher} for publisher in dict.fromkeys(model.publisher for model in events)],
        },
        "servers": {"broker": {
            "host": "{host}", "protocol": "amqp", "protocolVersion": "0.9.1",
            "description": "The deployment's RabbitMQ (its operators give you an account and the virtual host)",
            "variables": {"host": {"default": "localhost:5672", "description": "host:port of the broker"}},
        }},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": components_schemas, "messages": messages},
    }


if __name__ == "__main__":
    sys.stdout.write(json.dumps(build_asyncapi(), indent=2, ensure_ascii=False) + "\n")
