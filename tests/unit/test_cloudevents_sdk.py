"""The official CloudEvents SDK (``cloudevents`` 2.x) reads Credence's envelope as it is: every event type of the
contract, built from its model and serialised as the outbox stores it and the relay publishes it, comes out of
the SDK's RabbitMQ structured-mode reader (the one deploy/registry_subscriber.py uses) with its attributes, its
data and the ``correlationid`` extension intact."""

from __future__ import annotations

import json

import pytest
from cloudevents.core.bindings.rabbitmq import RabbitMQMessage, from_rabbitmq_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent

from credence_common.contracts.docs import example
from credence_common.contracts.envelope import EventPayload, make_envelope
from credence_common.contracts.events import ALL_EVENTS, EVENTS_BY_TYPE
from credence_common.observability import logs
from deploy import registry_subscriber


def published_body(model: type[EventPayload], correlation_id: str | None = "5f0c2a9e4b7d4e21a3c8d6f1b2e4a7c9"):
    """One real envelope of ``model`` as its relay publishes it: the payload from the model, the envelope from
    ``make_envelope`` (what ``Outbox.add`` calls) and the body ``model_dump_json()`` (what the outbox stores)."""
    payload = model.model_validate(example(model)["data"])
    with logs.correlation_scope(correlation_id):  # as a request or timer run does (None: a fresh id)
        envelope = make_envelope(payload, subject=example(model)["subject"])
    return envelope, envelope.model_dump_json().encode()


@pytest.mark.parametrize("model", ALL_EVENTS, ids=lambda model: model.event_type)
def test_every_event_type_parses_through_the_sdk_with_its_attributes_data_and_correlationid(model):
    envelope, body = published_body(model)
    event = registry_subscriber.read_event(body, "application/json")
    assert isinstance(event, CloudEvent)
    assert event.get_specversion() == "1.0"
    assert event.get_id() == envelope.id
    assert event.get_type() == model.event_type
    assert event.get_source() == f"/credence/{model.publisher}"
    assert event.get_subject() == envelope.subject and event.get_subject()
    assert event.get_time() == envelope.time and event.get_time().tzinfo is not None
    assert event.get_datacontenttype() == "application/json"
    assert event.get_data() == envelope.data == json.loads(body)["data"]
    assert event.get_extension("correlationid") == "5f0c2a9e4b7d4e21a3c8d6f1b2e4a7c9"
    # and the payload the SDK hands over is the contract's model again
    assert model.model_validate(event.get_data()) == model.model_validate(envelope.data)


def test_every_event_type_of_the_contract_is_covered():
    assert {model.event_type for model in ALL_EVENTS} == set(EVENTS_BY_TYPE)
    assert len(ALL_EVENTS) == len(EVENTS_BY_TYPE)


def test_an_event_without_a_correlation_id_still_parses():
    envelope, body = published_body(ALL_EVENTS[0], correlation_id=None)
    event = registry_subscriber.read_event(body)
    assert event.get_extension("correlationid") == envelope.model_extra["correlationid"]  # a fresh one
    assert event.get_extension("correlationid")
    older = json.loads(body)
    del older["correlationid"]  # events written before the attribute existed
    assert registry_subscriber.read_event(json.dumps(older).encode()).get_extension("correlationid") is None


def test_the_sdk_writes_back_what_credence_publishes():
    """Round trip through the SDK's own structured-mode writer: same attributes, same data."""
    envelope, body = published_body(EVENTS_BY_TYPE["credence.certificate.issued.v1"])
    event = registry_subscriber.read_event(body)
    message = to_structured_event(event)
    assert message.content_type == "application/cloudevents+json"
    again = from_rabbitmq_event(message)  # content type application/cloudevents+json: structured, auto-detected
    assert again.get_attributes() == event.get_attributes() and again.get_data() == event.get_data()
    assert json.loads(message.body)["time"] == envelope.time.isoformat().replace("+00:00", "Z")


def test_why_the_subscriber_asks_for_structured_mode():
    """Credence says content_type application/json, so the binding's auto-detection would read the body as the data
    of a binary-mode event and find no attributes in the (absent) ce- headers."""
    _envelope, body = published_body(ALL_EVENTS[0])
    with pytest.raises(registry_subscriber.UNREADABLE):
        from_rabbitmq_event(RabbitMQMessage(headers={}, content_type="application/json", body=body))


@pytest.mark.parametrize("body", [
    b"not json", b"\xff\xfe", b"[1, 2]", b'"a string"', b"{}",
    b'{"specversion": "1.0", "id": "e1", "type": "credence.certificate.issued.v1"}',  # no source
    b'{"specversion": "0.2", "id": "e1", "source": "/x", "type": "t"}',
    b'{"specversion": "1.0", "id": "e1", "source": "/x", "type": "t", "time": "yesterday"}',
    b'{"specversion": "1.0", "id": "e1", "source": "/x", "type": "t", "time": 5}',
    b'{"specversion": "1.0", "id": "e1", "source": "/x", "type": "t", "time": "2026-11-23T02:15:00"}',  # naive
    b'{"specversion": "1.0", "id": 7, "source": "/x", "type": "t"}',
    b'{"specversion": "1.0", "id": "e1", "source": "/x", "type": "t", "subject": null}',
    b'{"specversion": "1.0", "id": "e1", "source": "/x", "type": "t", "Bad-Extension": "x"}',
], ids=lambda body: body.decode("utf-8", "replace")[:40])
def test_a_body_that_is_not_a_cloudevent_is_refused_with_one_of_the_errors_the_subscriber_drops(body):
    with pytest.raises(registry_subscriber.UNREADABLE):
        registry_subscriber.read_event(body, "application/json")


def test_the_registry_applies_what_the_sdk_read(tmp_path):
    registry = registry_subscriber.open_registry(str(tmp_path / "registry.sqlite"))
    envelope, body = published_body(EVENTS_BY_TYPE["credence.certificate.issued.v1"])
    assert registry_subscriber.apply(registry, registry_subscriber.read_event(body)) is True
    assert registry_subscriber.apply(registry, registry_subscriber.read_event(body)) is False  # redelivered
    row = registry.execute("SELECT certificate_id, status, sequence, last_event_id, issued_on FROM certificates")
    assert row.fetchall() == [(envelope.data["certificate_id"], "valid", envelope.data["sequence"], envelope.id,
                               envelope.data["issued_on"])]
    registry.close()
