"""Idempotency-Key records keep nothing a database reader could use (credence_common/persistence/idempotency.py), and no
route or RPC that hands out a credential keeps or replays its answer (gateway/routes/, identity's service)."""

from __future__ import annotations

import base64
import hashlib
import json
import typing
from datetime import timedelta

import pytest
from pydantic import BaseModel

from credence_common.bus.entrypoints import IdempotentRpc
from credence_common.persistence import idempotency
from gateway.api import ROUTES

SECRET = idempotency.gateway_key("test-jwt-secret")
BODY = b'{"login": "wang@example.com", "password": "Tiger-lily 47 canoe"}'


def headers(key="key-1", caller="public:anonymous", route="login", body=BODY, secret=SECRET) -> dict:
    return idempotency.request_headers(key, caller, route, "POST", "/api/v1/auth/login", body, secret)


def answer_key(found: dict) -> bytes:
    return base64.b64decode(found[idempotency.ANSWER_KEY_HEADER])


def test_the_fingerprint_of_a_body_cannot_be_recomputed_without_the_gateway_secret():
    # an unkeyed hash of a login body lets a database reader test password guesses offline
    unkeyed = hashlib.sha256("\x00".join(("POST", "/api/v1/auth/login", hashlib.sha256(BODY).hexdigest()))
                             .encode()).hexdigest()
    found = headers()
    assert found[idempotency.FINGERPRINT_HEADER] != unkeyed
    assert headers(secret=idempotency.gateway_key("another-secret"))[idempotency.FINGERPRINT_HEADER] \
        != found[idempotency.FINGERPRINT_HEADER]
    assert headers() == found  # and a retry computes the same three values
    assert "Tiger-lily" not in json.dumps(found)


def test_the_answer_key_belongs_to_one_caller_route_and_key_and_is_not_the_record_key():
    found = headers()
    assert len(answer_key(found)) == 32
    for other in (headers(key="key-2"), headers(caller="candidate:c-1"), headers(route="refresh_session"),
                  headers(secret=idempotency.gateway_key("another-secret"))):
        assert answer_key(other) != answer_key(found)
    assert found[idempotency.ANSWER_KEY_HEADER] not in found[idempotency.RECORD_HEADER]


def test_a_sealed_answer_opens_only_with_its_key_for_its_record():
    key = answer_key(headers())
    answer = {"result": {"ticket_number": "112600000001", "full_name": "王小明"}}
    sealed = idempotency.seal_answer(answer, key, "record-1", "identity.lookup_ticket")
    assert sealed.startswith(idempotency.ANSWER_FORMAT)
    assert "112600000001" not in sealed and "王小明" not in sealed
    assert idempotency.open_answer(sealed, key, "record-1", "identity.lookup_ticket") == answer
    assert idempotency.open_answer(sealed, answer_key(headers(key="key-2")), "record-1",
                                   "identity.lookup_ticket") is None
    assert idempotency.open_answer(sealed, key, "record-2", "identity.lookup_ticket") is None  # moved to another row
    assert idempotency.open_answer(sealed[:-4] + "AAAA", key, "record-1", "identity.lookup_ticket") is None
    # an answer kept in clear before answers were sealed is not replayed
    assert idempotency.open_answer(json.dumps(answer), key, "record-1", "identity.lookup_ticket") is None
    assert idempotency.open_answer("v1:not base64!", key, "record-1", "identity.lookup_ticket") is None


def test_the_record_ttl_is_24_hours_unless_the_service_sets_another(monkeypatch):
    monkeypatch.delenv("IDEMPOTENCY_RECORD_TTL_HOURS", raising=False)
    assert idempotency.record_ttl({}) == timedelta(hours=24)
    monkeypatch.setenv("IDEMPOTENCY_RECORD_TTL_HOURS", "6")
    assert idempotency.record_ttl({}) == timedelta(hours=6)
    assert idempotency.record_ttl({"IDEMPOTENCY_RECORD_TTL_HOURS": "0.5"}) == timedelta(minutes=30)
    with pytest.raises(ValueError):
        idempotency.record_ttl({"IDEMPOTENCY_RECORD_TTL_HOURS": "0"})


class _Worker:
    def __init__(self, data):
        self.data = data
        self.container = type("Container", (), {"service_name": "identity"})()
        self.entrypoint = type("Entrypoint", (), {"method_name": "register_candidate"})()


def test_a_call_without_a_usable_answer_key_is_an_ordinary_call():
    found = headers()
    assert idempotency.IdempotentCall.from_worker(_Worker(found)).answer_key == answer_key(found)
    no_key = {k: v for k, v in found.items() if k != idempotency.ANSWER_KEY_HEADER}
    assert idempotency.IdempotentCall.from_worker(_Worker(no_key)) is None  # nothing could be sealed
    assert idempotency.IdempotentCall.from_worker(_Worker({**found, idempotency.ANSWER_KEY_HEADER: "short"})) is None


# --- credentials are never replayed ----------------------------------------------------------------

CREDENTIAL_FIELDS = {"access_token", "refresh_token", "share_code"}
ANSWERS_HOLDING_CODES = {"dev_sms_messages"}  # its texts carry the codes


def _fields(model: type[BaseModel], seen=None) -> set[str]:
    seen = seen or set()
    if model in seen:
        return set()
    seen.add(model)
    names = set(model.model_fields)
    for field in model.model_fields.values():
        for inner in [field.annotation, *typing.get_args(field.annotation)]:
            for candidate in [inner, *typing.get_args(inner)]:
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    names |= _fields(candidate, seen)
    return names


def test_no_route_whose_answer_is_a_credential_replays_it():
    holding = {route.name for route in ROUTES if route.method != "GET"  # a GET is never replayed
               and route.response_model is not None and _fields(route.response_model) & CREDENTIAL_FIELDS}
    holding |= ANSWERS_HOLDING_CODES
    assert {"login", "login_with_code", "refresh_session", "staff_token", "institution_token",
            "create_share_code"} <= holding
    replayed = sorted(route.name for route in ROUTES if route.name in holding and route.replayable)
    assert replayed == []


def test_identitys_credential_rpcs_never_keep_an_answer_whatever_the_caller_sends():
    from services.identity.service import IdentityService

    def idempotent(method: str) -> bool:
        entrypoints = [e for e in getattr(IdentityService, method).nameko_entrypoints if isinstance(e, IdempotentRpc)]
        assert len(entrypoints) == 1
        return entrypoints[0].idempotent

    for method in ("login", "login_with_code", "refresh_session", "authenticate_staff", "authenticate_institution",
                   "dev_sms_messages"):
        assert not idempotent(method), method
    assert idempotent("register_candidate") and idempotent("logout")
