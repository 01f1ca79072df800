from __future__ import annotations

import json

import pytest
from nameko.exceptions import RemoteError, deserialize, serialize

from credence_common.contracts import errors
from credence_common.contracts.errors import (
    ERROR_CLASSES,
    BadRequest,
    Conflict,
    CredenceError,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
)
from gateway.statuses import HTTP_STATUS, http_status

STATUS = [
    (BadRequest, 400, "bad_request"),
    (Unauthorized, 401, "unauthorized"),
    (Forbidden, 403, "forbidden"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (InvalidInput, 422, "invalid_input"),
    (RateLimited, 429, "rate_limited"),
    (ServiceUnavailable, 503, "service_unavailable"),
]


@pytest.mark.parametrize("cls, status, default_code", STATUS)
def test_http_status_and_default_code(cls, status, default_code):
    err = cls()
    assert http_status(err) == status  # the gateway's table (gateway/statuses.py), not an attribute of the error
    assert not hasattr(err, "http_status")
    assert err.code == default_code
    assert err.message == ""
    assert err.details == []


def test_error_classes_lists_every_subclass_once():
    assert set(ERROR_CLASSES) == {cls for cls, _, _ in STATUS} == set(HTTP_STATUS)
    assert len(ERROR_CLASSES) == len(set(ERROR_CLASSES))
    assert all(issubclass(cls, CredenceError) for cls in ERROR_CLASSES)
    declared = {obj for obj in vars(errors).values()
                if isinstance(obj, type) and issubclass(obj, CredenceError) and obj is not CredenceError}
    assert declared == set(ERROR_CLASSES)


def test_str_shows_code_and_message():
    assert str(NotFound("no_such_certificate", "No certificate has this number.")) == (
        "no_such_certificate: No certificate has this number.")


def test_to_body_without_details():
    body = Conflict("already_registered", "Already registered.").to_body()
    assert body == {"error": {"code": "already_registered", "message": "Already registered."}}
    assert "details" not in body["error"]


def test_to_body_with_details_is_json():
    details = [{"field": "mobile", "message": "not a valid mobile number"}]
    body = InvalidInput("invalid_mobile", "Bad mobile.", details).to_body()
    assert body == {"error": {"code": "invalid_mobile", "message": "Bad mobile.", "details": details}}
    assert json.loads(json.dumps(body)) == body


@pytest.mark.parametrize("cls", ERROR_CLASSES)
def test_round_trip_over_the_bus_keeps_class_code_message_details(cls):
    original = cls(f"{cls.__name__.lower()}_code", "Something a person can act on.",
                   [{"field": "x", "message": "wrong"}])
    wire = json.loads(json.dumps(serialize(original)))  # the RPC reply really is JSON
    rebuilt = deserialize(wire)
    assert type(rebuilt) is cls
    assert not isinstance(rebuilt, RemoteError)
    assert rebuilt.code == original.code
    assert rebuilt.message == original.message
    assert rebuilt.details == original.details
    assert http_status(rebuilt) == http_status(original)
    assert rebuilt.to_body() == original.to_body()


@pytest.mark.parametrize("cls", ERROR_CLASSES)
def test_round_trip_of_a_default_error(cls):
    rebuilt = deserialize(serialize(cls()))
    assert type(rebuilt) is cls
    assert rebuilt.code == cls.default_code
    assert rebuilt.details == []


def test_an_unregistered_exception_becomes_a_remote_error():
    rebuilt = deserialize(serialize(ValueError("boom")))
    assert isinstance(rebuilt, RemoteError)
    assert not isinstance(rebuilt, CredenceError)


# --- a 429 says when to come back (the gateway answers it in Retry-After) ------------------------------------

def test_a_rate_limit_names_its_wait_in_its_details():
    refusal = RateLimited.after(17, "too_many_attempts", "Too many failed attempts; try again in 17 s.")
    assert refusal.retry_after_seconds == 17
    assert refusal.to_body()["error"]["details"] == [{"field": "retry_after_seconds", "message": "17"}]


@pytest.mark.parametrize("details, seconds", [
    (None, 60),  # the per-minute limits name no wait: a minute
    ([{"field": "certificate_number", "message": "x"}], 60),
    ([{"field": "retry_after_seconds", "message": "not a number"}], 60),
    ([{"field": "retry_after_seconds", "message": "0"}], 1),  # never "come back now"
    ([{"field": "retry_after_seconds", "message": "86400"}], 86400),
])
def test_a_rate_limits_wait_defaults_to_a_minute_and_is_at_least_a_second(details, seconds):
    assert RateLimited("rate_limited", "wait", details).retry_after_seconds == seconds


def test_the_wait_survives_the_bus_and_a_batch_answer():
    refusal = RateLimited.after(42, "too_many_attempts", "wait")
    rebuilt = deserialize(json.loads(json.dumps(serialize(refusal))))
    assert isinstance(rebuilt, RateLimited) and rebuilt.retry_after_seconds == 42
    assert errors.refusal_from_wire(errors.refusal_to_wire(refusal)).retry_after_seconds == 42


def test_fields_of_an_error_cross_the_bus_and_sit_beside_its_code():
    # a rejected import names its batch as a field of the answer, not only in words (#19 item 6)
    refused = errors.InvalidInput("import_rejected", "2 row error(s) in batch b-1", [{"field": "line 2",
                                                                                     "message": "bad"}],
                                  fields={"batch_id": "b-1"})
    rebuilt = deserialize(json.loads(json.dumps(serialize(refused))))
    assert type(rebuilt) is errors.InvalidInput and rebuilt.fields == {"batch_id": "b-1"}
    assert rebuilt.to_body() == {"error": {"code": "import_rejected", "message": "2 row error(s) in batch b-1",
                                           "batch_id": "b-1", "details": [{"field": "line 2", "message": "bad"}]}}
    # and an error without any keeps the arguments it always had on the bus
    assert errors.InvalidInput("x", "y").args == ("x", "y", [])


def test_a_subclass_takes_the_status_of_its_nearest_listed_parent():
    class NoSuchTicket(NotFound):
        pass

    assert http_status(NoSuchTicket()) == 404
    assert http_status(CredenceError()) == 400


@pytest.mark.parametrize("cls", ERROR_CLASSES)
def test_a_refusal_named_by_the_previous_release_is_rebuilt_as_its_class(cls):
    """Before credence_common was split (2026-12-07) the classes lived in credence_common.errors; during a rolling
    deploy a process of that release names its refusals so (docs/operations.md, "The layout release")."""
    wire = serialize(cls("some_code", "A refusal from the previous release."))
    wire["exc_path"] = f"credence_common.errors.{cls.__name__}"
    rebuilt = deserialize(wire)
    assert type(rebuilt) is cls and rebuilt.code == "some_code"
