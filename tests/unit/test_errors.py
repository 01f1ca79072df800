from __future__ import annotations

import json

import pytest
from nameko.exceptions import RemoteError, deserialize, serialize

from credence_common import errors
from credence_common.errors import (
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
    assert cls.http_status == status
    err = cls()
    assert err.http_status == status
    assert err.code == default_code
    assert err.message == ""
    assert err.details == []


def test_error_classes_lists_every_subclass_once():
    assert set(ERROR_CLASSES) == {cls for cls, _, _ in STATUS}
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
    assert rebuilt.http_status == original.http_status
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
