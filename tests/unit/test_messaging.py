from __future__ import annotations

from datetime import UTC, datetime

import pytest

from credence_common.contracts.envelope import make_envelope
from credence_common.contracts.events import CandidateRegisteredV1, CertificateAwaitingPaymentV1
from credence_common.persistence.messaging import MalformedEvent, read_event

REGISTERED = CandidateRegisteredV1(candidate_id="c-1", exam_region="11",
                                   registered_at=datetime(2026, 1, 15, 8, 30, tzinfo=UTC))


def message(payload=REGISTERED, **overrides) -> dict:
    wire = make_envelope(payload, subject="c-1").model_dump(mode="json")
    wire.update(overrides)
    return wire


def test_a_valid_message_parses_into_envelope_and_typed_payload():
    wire = message()
    received = read_event(wire, CandidateRegisteredV1)
    assert isinstance(received.data, CandidateRegisteredV1)
    assert received.data == REGISTERED
    assert received.envelope.id == wire["id"]
    assert received.envelope.type == "credence.identity.candidate_registered.v1"
    assert received.envelope.subject == "c-1"


def test_unknown_envelope_extensions_are_tolerated():
    received = read_event(message(traceparent="00-abc-def-01"), CandidateRegisteredV1)
    assert received.data == REGISTERED


def test_a_message_of_another_type_is_malformed():
    with pytest.raises(MalformedEvent, match="credence.certificate.awaiting_payment.v1"):
        read_event(message(), CertificateAwaitingPaymentV1)


@pytest.mark.parametrize(
    "data",
    [
        {"candidate_id": "c-1", "exam_region": "11"},  # missing field
        {"candidate_id": "c-1", "exam_region": "11", "registered_at": "not a time"},
    ],
)
def test_invalid_data_is_malformed(data):
    with pytest.raises(MalformedEvent):
        read_event(message(data=data), CandidateRegisteredV1)


@pytest.mark.parametrize("wire", [None, "text", [], {}, {"type": "credence.identity.candidate_registered.v1"}])
def test_something_that_is_not_an_envelope_is_malformed(wire):
    with pytest.raises(MalformedEvent):
        read_event(wire, CandidateRegisteredV1)


def test_a_type_mismatch_is_detected_before_data_validation():
    wire = message(type="credence.candidate.something_else.v1")
    with pytest.raises(MalformedEvent, match="expected credence.identity.candidate_registered.v1"):
        read_event(wire, CandidateRegisteredV1)
