"""Typed domain errors that cross the RabbitMQ bus intact.

nameko turns an exception raised in an RPC into a ``RemoteError`` on the caller's side unless the
exception class is registered with ``deserialize_to_instance``; registered classes are rebuilt from
their ``args``, so the gateway can catch the very same class and map it to an HTTP status (gateway/statuses.py:
HTTP belongs to the gateway, not to the errors). The registration is credence_common/bus/error_registry.py's, done
where nameko is set up, so that a pure rule raising a refusal never loads nameko.
"""

from __future__ import annotations

from typing import Any


class CredenceError(Exception):
    """A refusal the caller can act on: never a bug, never a 500."""

    default_code = "bad_request"

    def __init__(self, code: str | None = None, message: str = "", details: list[Any] | None = None,
                 fields: dict[str, str] | None = None):
        """``fields``: what the caller needs to act on as fields of the error itself, not only words in the
        message (a rejected import's ``batch_id``); each is declared on ``contracts.common.ErrorBody``."""
        code = code or self.default_code
        details = details or []
        # in ``args`` (what crosses the bus and rebuilds the error at the gateway) only when there are any
        super().__init__(code, message, details, *([dict(fields)] if fields else []))
        self.code = code
        self.message = message
        self.details = details
        self.fields = dict(fields or {})

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message, **self.fields}
        if self.details:
            body["details"] = self.details
        return {"error": body}


class BadRequest(CredenceError):
    default_code = "bad_request"


class Unauthorized(CredenceError):
    default_code = "unauthorized"


class Forbidden(CredenceError):
    default_code = "forbidden"


class NotFound(CredenceError):
    default_code = "not_found"


class Conflict(CredenceError):
    default_code = "conflict"


class InvalidInput(CredenceError):
    default_code = "invalid_input"


RETRY_AFTER_FIELD = "retry_after_seconds"


class RateLimited(CredenceError):
    """A refusal to come back later: its details may name the wait, ``{"field": "retry_after_seconds",
    "message": "<seconds>"}``; the gateway answers it in ``Retry-After``."""

    default_code = "rate_limited"
    default_retry_after_seconds = 60  # the limits that name no wait of their own count per minute

    @classmethod
    def after(cls, seconds: int, code: str, message: str) -> RateLimited:
        return cls(code, message, [{"field": RETRY_AFTER_FIELD, "message": str(max(1, int(seconds)))}])

    @property
    def retry_after_seconds(self) -> int:
        """The wait the refusal names (at least 1 s), else a minute."""
        for detail in self.details:
            if isinstance(detail, dict) and detail.get("field") == RETRY_AFTER_FIELD:
                try:
                    return max(1, int(str(detail.get("message"))))
                except (TypeError, ValueError):
                    break
        return self.default_retry_after_seconds


class ServiceUnavailable(CredenceError):
    default_code = "service_unavailable"


# A service's own database failed it (credence_common/bus/entrypoints.py ``database_fault_as_refusal``): a "try again"
# for the caller, but a fault of the service for its operator, counted as an error, not a refusal
# (credence_common/observability/metrics.py), so the error-rate alert sees a database outage.
DATABASE_UNAVAILABLE = "database_unavailable"


def is_fault(error: BaseException) -> bool:
    """Whether a failed call is the service's own fault (an error), not a refusal of the request."""
    return not isinstance(error, CredenceError) or (isinstance(error, ServiceUnavailable)
                                                    and error.code == DATABASE_UNAVAILABLE)


ERROR_CLASSES = (BadRequest, Unauthorized, Forbidden, NotFound, Conflict, InvalidInput, RateLimited,
                 ServiceUnavailable)


def refusal_to_wire(error: CredenceError) -> dict[str, Any]:
    """A refusal as data, for answers that carry many outcomes (a batch) instead of raising one."""
    return {"type": type(error).__name__, "code": error.code, "message": error.message, "details": error.details}


def refusal_from_wire(wire: dict[str, Any]) -> CredenceError:
    by_name = {cls.__name__: cls for cls in ERROR_CLASSES}
    refusal = by_name.get(str(wire.get("type")), BadRequest)
    return refusal(wire.get("code"), wire.get("message", ""), wire.get("details"))
