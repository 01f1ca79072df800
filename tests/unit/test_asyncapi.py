"""The AsyncAPI document of the event channels (credence_common/contracts/asyncapi.py, served at /asyncapi.json):
valid against the official AsyncAPI 3.0.0 JSON Schema (vendored in tests/vendor/asyncapi, its source in the README
there), and complete: every event type of the contract has its channel, exchange, routing key, bindings, payload
schema and version, and what the platform publishes matches the schema it declares."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from credence_common.contracts import events as contract
from credence_common.contracts.asyncapi import build_asyncapi
from credence_common.contracts.docs import example
from credence_common.contracts.envelope import EventPayload, make_envelope
from credence_common.contracts.events import ALL_EVENTS
from tests.unit.test_openapi import iter_refs

OFFICIAL_SCHEMA = Path(__file__).resolve().parents[1] / "vendor" / "asyncapi" / "3.0.0.json"
DOCUMENT_URI = "urn:credence:events"


def official_problems(document: dict) -> list[str]:
    """What the official AsyncAPI 3.0.0 JSON Schema finds wrong with ``document`` (used by the e2e test too)."""
    validator = Draft7Validator(json.loads(OFFICIAL_SCHEMA.read_text(encoding="utf-8")))
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message[:300]}"
            for error in validator.iter_errors(document)]


def message_validator(document: dict, message_name: str) -> Draft7Validator:
    """A validator of one message's payload, its $refs resolved inside ``document``."""
    registry = Registry().with_resource(DOCUMENT_URI, Resource.from_contents(document, default_specification=DRAFT7))
    return Draft7Validator({"$ref": f"{DOCUMENT_URI}#/components/messages/{message_name}/payload"},
                           registry=registry)


def contract_models() -> list[type[EventPayload]]:
    """Every event model defined in the contract module, listed in ALL_EVENTS or not."""
    return [value for value in vars(contract).values()
            if inspect.isclass(value) and issubclass(value, EventPayload) and value is not EventPayload]


@pytest.fixture(scope="module")
def document() -> dict:
    return build_asyncapi()


def test_the_official_asyncapi_schema_accepts_the_document(document):
    assert document["asyncapi"] == "3.0.0"
    assert official_problems(document) == []
    json.dumps(document)  # serialisable as served


def test_the_official_schema_is_not_a_rubber_stamp(document):
    broken = json.loads(json.dumps(document))
    channel = broken["channels"]["credence.certificate.issued.v1"]
    channel["bindings"]["amqp"]["exchange"]["type"] = "broadcast"
    broken["operations"]["credence.certificate.issued.v1"]["action"] = "publish"  # AsyncAPI 2's word
    broken["operations"]["credence.certificate.revoked.v1"]["bindings"]["amqp"]["deliveryMode"] = 3
    assert len(official_problems(broken)) == 3


def test_every_event_model_of_the_contract_has_its_channel(document):
    """A type added to the contract (to events.py, with or without ALL_EVENTS) and missing here fails."""
    models = contract_models()
    assert {model.event_type for model in models} == {model.event_type for model in ALL_EVENTS}
    assert set(document["channels"]) == {model.event_type for model in models}
    assert set(document["operations"]) == {model.event_type for model in models}
    assert set(document["components"]["messages"]) == {model.__name__ for model in models}


@pytest.mark.parametrize("model", ALL_EVENTS, ids=lambda model: model.event_type)
def test_each_channel_says_exchange_routing_key_bindings_schema_and_version(document, model):
    channel = document["channels"][model.event_type]
    assert channel["address"] == model.event_type  # the routing key
    assert channel["bindings"]["amqp"] == {
        "is": "routingKey", "bindingVersion": "0.3.0",
        "exchange": {"name": f"{model.publisher}.events", "type": "topic", "durable": True, "autoDelete": False}}
    assert channel["x-event-version"] == model.event_type.rsplit(".", 1)[1] == "v1"
    assert channel["messages"] == {model.__name__: {"$ref": f"#/components/messages/{model.__name__}"}}

    operation = document["operations"][model.event_type]
    assert operation["action"] == "send"
    assert operation["channel"] == {"$ref": f"#/channels/{model.event_type}"}
    assert operation["messages"] == [{"$ref": f"#/channels/{model.event_type}/messages/{model.__name__}"}]
    assert operation["bindings"]["amqp"]["deliveryMode"] == 2  # persistent

    message = document["components"]["messages"][model.__name__]
    assert message["name"] == model.event_type and message["summary"] == model.description
    assert message["contentType"] == "application/json"
    assert message["bindings"]["amqp"]["messageType"] == model.event_type
    assert message["correlationId"]["location"] == "$message.payload#/correlationid"
    envelope, narrowed = message["payload"]["allOf"]
    assert envelope == {"$ref": "#/components/schemas/CloudEventsEnvelope"}
    assert narrowed["properties"]["type"] == {"const": model.event_type}
    assert narrowed["properties"]["source"] == {"const": f"/credence/{model.publisher}"}
    assert narrowed["properties"]["data"] == {"$ref": f"#/components/schemas/{model.__name__}"}
    # the payload schema is the model's own
    # (nested models, such as RefundedDue, are components of their own that the payload refers to)
    expected = model.model_json_schema(ref_template="#/components/schemas/{model}")
    nested = expected.pop("$defs", {})
    assert document["components"]["schemas"][model.__name__] == expected
    for name, schema in nested.items():
        assert document["components"]["schemas"][name] == schema


def test_the_bindings_are_how_the_relay_declares_and_publishes(document):
    from credence_common.bus.outbox_relay import event_exchange

    for model in ALL_EVENTS:
        exchange = event_exchange(model.publisher)  # the relay's (and nameko's) declaration
        binding = document["channels"][model.event_type]["bindings"]["amqp"]["exchange"]
        assert (binding["name"], binding["type"], binding["durable"], binding["autoDelete"]) == (
            exchange.name, exchange.type, exchange.durable, exchange.auto_delete)
        assert document["operations"][model.event_type]["bindings"]["amqp"]["deliveryMode"] == exchange.delivery_mode


def test_the_envelope_schema_names_every_cloudevents_attribute(document):
    envelope = document["components"]["schemas"]["CloudEventsEnvelope"]
    assert set(envelope["required"]) == {"specversion", "id", "source", "type", "time", "subject",
                                         "datacontenttype", "data"}
    assert "correlationid" in envelope["properties"] and "correlationid" not in envelope["required"]
    assert envelope["properties"]["specversion"]["const"] == "1.0"
    assert all(attribute.get("description") for attribute in envelope["properties"].values())


def test_every_ref_resolves_inside_the_document(document):
    refs = list(iter_refs(document))
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        node = document
        for part in ref[2:].split("/"):
            assert part in node, ref
            node = node[part]


@pytest.mark.parametrize("model", ALL_EVENTS, ids=lambda model: model.event_type)
def test_what_the_platform_publishes_matches_the_declared_message(document, model):
    validator = message_validator(document, model.__name__)
    published = json.loads(make_envelope(model.model_validate(example(model)["data"]),
                                         subject="4f7d2c1e").model_dump_json())  # as the outbox stores it
    assert [error.message for error in validator.iter_errors(published)] == []
    for shown in document["components"]["messages"][model.__name__]["examples"]:
        assert [error.message for error in validator.iter_errors(shown["payload"])] == []
    wrong_type = {**published, "type": model.event_type.replace(".v1", ".v2")}
    assert list(validator.iter_errors(wrong_type))
    wrong_data = {**published, "data": {}}  # every type has required fields
    assert list(validator.iter_errors(wrong_data))


def test_the_document_version_follows_the_argument():
    assert build_asyncapi()["info"]["version"] == "0.1.0"
    assert build_asyncapi("9.9.9")["info"]["version"] == "9.9.9"


def test_the_openapi_document_points_to_it():
    from gateway.openapi import build_openapi

    openapi = build_openapi()
    assert "/asyncapi.json" in openapi["info"]["description"]
    assert openapi["paths"]["/asyncapi.json"]["get"]["operationId"] == "asyncapi"
    assert "/openapi.json" in build_asyncapi()["info"]["description"]
