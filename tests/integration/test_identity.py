"""Identity in a real nameko container, on real RabbitMQ and a real database."""

from __future__ import annotations

import eventlet
import pytest

from credence_common.errors import Conflict, InvalidInput, Unauthorized
from services.identity.service import IdentityService
from tests.integration.conftest import query, rpc_proxy

VALID_ID = "11010519491231002X"


def registration(**changes):
    request = {"full_name": "王小明", "resident_id_number": VALID_ID, "mobile": "13812345678",
               "password": "correct horse battery"}
    request.update(changes)
    return request


def test_registration_then_confirmation_issues_a_ticket_and_publishes_events(start_service, event_spy):
    container, config = start_service(IdentityService)
    spy = event_spy("identity")
    with rpc_proxy("identity", config) as identity:
        candidate = identity.register_candidate(registration())
        assert candidate["status"] == "pre_registered"
        assert candidate["resident_id_number_masked"] == "1101**********002X"
        assert candidate["mobile_masked"] == "138****5678"
        assert candidate["exam_region"] == "11"
        assert VALID_ID not in str(candidate) and "13812345678" not in str(candidate)

        confirmed = identity.confirm_identity(candidate["candidate_id"], {"method": "online"})
        assert confirmed["status"] == "confirmed"
        assert len(confirmed["ticket_number"]) == 12 and confirmed["ticket_number"].startswith("11")
        again = identity.confirm_identity(candidate["candidate_id"], {"method": "online"})
        assert again["ticket_number"] == confirmed["ticket_number"]

    events = spy.collect(2)
    assert [e["type"] for e in events] == ["credence.identity.candidate_registered.v1",
                                           "credence.identity.candidate_confirmed.v1"]
    confirmed_event = events[1]
    assert confirmed_event["specversion"] == "1.0" and confirmed_event["source"] == "/credence/identity"
    assert confirmed_event["data"]["ticket_number"] == confirmed["ticket_number"]
    assert confirmed_event["data"]["resident_id_number_masked"] == "1101**********002X"
    assert VALID_ID not in str(events)
    assert spy.drain() == []  # the second confirmation changed nothing and published nothing
    assert query(config["DB_URI"], "select count(*) from outbox where published_at is null") == [(0,)]


def test_bad_input_is_refused_with_a_typed_error_and_stores_nothing(start_service):
    container, config = start_service(IdentityService)
    with rpc_proxy("identity", config) as identity:
        with pytest.raises(InvalidInput) as bad_id:
            identity.register_candidate(registration(resident_id_number="110105194912310021"))
        assert bad_id.value.code == "invalid_resident_id_number"
        with pytest.raises(InvalidInput) as missing:
            identity.register_candidate({"full_name": "王小明"})
        assert missing.value.code == "invalid_input"
        assert {d["field"] for d in missing.value.details} >= {"resident_id_number", "mobile", "password"}
        with pytest.raises(InvalidInput) as bad_mobile:
            identity.register_candidate(registration(mobile="02012345678"))
        assert bad_mobile.value.code == "invalid_mobile"

        identity.register_candidate(registration())
        with pytest.raises(Conflict) as duplicate:
            identity.register_candidate(registration(full_name="李四", resident_id_number=VALID_ID.lower()))
        assert duplicate.value.code == "already_registered"
    assert query(config["DB_URI"], "select count(*) from candidates") == [(1,)]
    assert query(config["DB_URI"], "select count(*) from outbox") == [(1,)]


def test_sign_in_checks_the_password_and_the_bootstrap_staff_account(start_service):
    container, config = start_service(IdentityService)
    with rpc_proxy("identity", config) as identity:
        candidate = identity.register_candidate(registration())
        principal = identity.authenticate_candidate({"resident_id_number": VALID_ID,
                                                     "password": "correct horse battery"})
        assert principal == {"subject": candidate["candidate_id"], "role": "candidate", "display_name": "王小明"}
        with pytest.raises(Unauthorized):
            identity.authenticate_candidate({"resident_id_number": VALID_ID, "password": "wrong password"})
        with pytest.raises(Unauthorized):
            identity.authenticate_candidate({"resident_id_number": "110105197001010014", "password": "whatever1"})

        staff = identity.authenticate_staff({"username": "admin", "password": "test-staff-password"})
        assert staff["role"] == "staff"
        with pytest.raises(Unauthorized):
            identity.authenticate_staff({"username": "admin", "password": "dev-insecure-staff-password"})


def test_concurrent_confirmations_give_one_ticket_number(start_service, event_spy):
    container, config = start_service(IdentityService)
    spy = event_spy("identity", "credence.identity.candidate_confirmed.v1")
    with rpc_proxy("identity", config) as identity:
        candidate = identity.register_candidate(registration())
        assert candidate["registered_at"].endswith(("Z", "+00:00"))  # aware UTC on every backend

    def confirm(_):
        with rpc_proxy("identity", config) as proxy:
            return proxy.confirm_identity(candidate["candidate_id"], {"method": "online"})["ticket_number"]

    tickets = list(eventlet.GreenPool(6).imap(confirm, range(6)))
    assert len(set(tickets)) == 1
    assert query(config["DB_URI"], "select ticket_number from candidates") == [(tickets[0],)]
    assert len(spy.collect(1)) == 1 and spy.drain() == []


def test_control_characters_are_refused_before_they_reach_the_database(start_service):
    container, config = start_service(IdentityService)
    with rpc_proxy("identity", config) as identity:
        with pytest.raises(InvalidInput) as nul:
            identity.authenticate_candidate({"resident_id_number": "\u0000", "password": "x"})
        assert nul.value.code == "invalid_characters"
        with pytest.raises(InvalidInput):
            identity.register_candidate(registration(full_name="王\u0000明"))
    assert query(config["DB_URI"], "select count(*) from candidates") == [(0,)]
