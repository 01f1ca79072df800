"""Typed domain errors that cross the RabbitMQ bus intact.

nameko turns an exception raised in an RPC into a ``RemoteError`` on the caller's side unless the
exception class is registered with ``deserialize_to_instance``; registered classes are rebuilt from
their ``args``, so the gateway can catch the very same class and map it to an HTTP status.
"""

from __future__ import annotations

from nameko.exceptions import deserialize_to_instance


class CredenceError(Exception):
    """A refusal the caller can act on: never a bug, never a 500."""

    http_status = 400
    default_code = "bad_request"

    def __init__(self, code: str | None = None, message: str = "", details: list | None = None):
        code = code or self.default_code
        details = details or []
        super().__init__(code, message, details)
        self.code = code
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def to_body(self) -> dict:
        body = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


@deserialize_to_instance
class BadRequest(CredenceError):
    http_status = 400
    default_code = "bad_request"


@deserialize_to_instance
class Unauthorized(CredenceError):
    http_status = 401
    default_code = "unauthorized"


@deserialize_to_instance
class Forbidden(CredenceError):
    http_status = 403
    default_code = "forbidden"


@deserialize_to_instance
class NotFound(CredenceError):
    http_status = 404
    default_code = "not_found"


@deserialize_to_instance
class Conflict(CredenceError):
    http_status = 409
    default_code = "conflict"


@deserialize_to_instance
class InvalidInput(CredenceError):
    http_status = 422
    default_code = "invalid_input"


@deserialize_to_instance
class RateLimited(CredenceError):
    http_status = 429
    default_code = "rate_limited"


@deserialize_to_instance
class ServiceUnavailable(CredenceError):
    http_status = 503
    default_code = "service_unavailable"


ERROR_CLASSES = (BadRequest, Unauthorized, Forbidden, NotFound, Conflict, InvalidInput, RateLimited,
                 ServiceUnavailable)


def refusal_to_wire(error: CredenceError) -> dict:
    """A refusal as data, for answers that carry many outcomes (a batch) instead of raising one."""
    return {"type": type(error).__name__, "code": error.code, "message": error.message, "details": error.details}


def refusal_from_wire(wire: dict) -> CredenceError:
    by_name = {cls.__name__: cls for cls in ERROR_CLASSES}
    return by_name.get(wire.get("type"), BadRequest)(wire.get("code"), wire.get("message", ""), wire.get("details"))
