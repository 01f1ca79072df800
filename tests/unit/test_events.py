from __future__ import annotations

import inspect
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from credence_common.contracts import events as contract
from credence_common.contracts.envelope import (
    SPEC_VERSION,
    EventEnvelope,
    EventPayload,
    exchange_name,
    make_envelope,
    source_for,
)
from credence_common.contracts.events import ALL_EVENTS, EVENTS_BY_TYPE, CandidateRegisteredV1, CertificateIssuedV1

EVENT_TYPE = re.compile(r"^credence\.[a-z_]+\.[a-z_]+\.v\d+$")
SERVICES = {"identity", "scoring", "certificates", "payments", "verification"}
REGISTERED_AT = datetime(2026, 1, 15, 8, 30, tzinfo=UTC)


def registered() -> CandidateRegisteredV1:
    return CandidateRegisteredV1(candidate_id="c-1", exam_region="11", registered_at=REGISTERED_AT)


# --- envelope ---------------------------------------------------------------------------------------

def test_make_envelope_sets_cloudevents_attributes():
    before = datetime.now(UTC)
    envelope = make_envelope(registered(), subject="c-1")
    after = datetime.now(UTC)
    assert envelope.specversion == SPEC_VERSION == "1.0"
    assert envelope.source == "/credence/identity"
    assert envelope.type == "credence.identity.candidate_registered.v1"
    assert envelope.subject == "c-1"
    assert envelope.datacontenttype == "application/json"
    assert envelope.time.tzinfo is not None and envelope.time.utcoffset() == timedelta(0)
    assert before <= envelope.time <= after
    assert uuid.UUID(envelope.id).version == 4


def test_envelope_data_is_the_payload_in_json_mode():
    envelope = make_envelope(registered())
    assert envelope.subject is None
    assert envelope.data == {"candidate_id": "c-1", "exam_region": "11", "registered_at": "2026-01-15T08:30:00Z"}
    assert CandidateRegisteredV1.model_validate(envelope.data) == registered()


def test_every_envelope_gets_a_unique_id():
    ids = {make_envelope(registered()).id for _ in range(200)}
    assert len(ids) == 200


def test_envelope_survives_json_round_trip():
    envelope = make_envelope(registered(), subject="c-1")
    again = EventEnvelope.model_validate_json(envelope.model_dump_json())
    assert again == envelope


@pytest.mark.parametrize("model", ALL_EVENTS, ids=lambda m: m.__name__)
def test_source_matches_the_publisher(model):
    assert source_for(model.publisher) == f"/credence/{model.publisher}"
    assert exchange_name(model.publisher) == f"{model.publisher}.events"


# --- the contract -----------------------------------------------------------------------------------

def test_all_events_lists_every_payload_class_of_the_contract():
    declared = {obj for obj in vars(contract).values()
                if inspect.isclass(obj) and issubclass(obj, EventPayload) and obj is not EventPayload}
    assert declared == set(ALL_EVENTS)


def test_event_types_are_unique():
    assert len(EVENTS_BY_TYPE) == len(ALL_EVENTS)
    assert all(EVENTS_BY_TYPE[model.event_type] is model for model in ALL_EVENTS)


@pytest.mark.parametrize("model", ALL_EVENTS, ids=lambda m: m.__name__)
def test_event_type_is_a_versioned_name(model):
    assert EVENT_TYPE.match(model.event_type), model.event_type
    version = model.event_type.rsplit(".v", 1)[1]
    assert model.__name__.endswith(f"V{version}")


@pytest.mark.parametrize("model", ALL_EVENTS, ids=lambda m: m.__name__)
def test_event_has_a_known_publisher_and_a_description(model):
    assert model.publisher in SERVICES
    assert model.description.strip()


@pytest.mark.parametrize("model", ALL_EVENTS, ids=lambda m: m.__name__)
def test_payload_ignores_unknown_fields_so_optional_additions_do_not_break_consumers(model):
    assert model.model_config.get("extra") == "ignore"
    with pytest.raises(ValidationError) as info:
        model.model_validate({"unexpected_field": "x"})
    assert not any(e["loc"] == ("unexpected_field",) for e in info.value.errors())
    assert all(e["type"] == "missing" for e in info.value.errors())


@pytest.mark.parametrize("model", ALL_EVENTS, ids=lambda m: m.__name__)
def test_payload_carries_no_unmasked_personal_data(model):
    for name in model.model_fields:
        lowered = name.lower()
        assert lowered != "mobile", name
        for personal in ("resident_id_number", "mobile"):
            if personal in lowered:
                assert lowered.endswith("_masked"), name
        assert "password" not in lowered, name


def test_payloads_are_frozen():
    payload = registered()
    with pytest.raises(ValidationError):
        payload.candidate_id = "c-2"


def test_certificate_issued_example_validates():
    payload = CertificateIssuedV1(
        certificate_id="cert-1", certificate_number="202611000000018", candidate_id="c-1",
        ticket_number="112600000001", holder_name="张三", resident_id_number_masked="110105********002X",
        program_code="P1", program_name="Program", issued_on="2026-01-15", issued_at=REGISTERED_AT,
    )
    envelope = make_envelope(payload)
    assert envelope.source == "/credence/certificates"
    assert envelope.data["issued_on"] == "2026-01-15"
