"""The HTTP status of each refusal: HTTP is the gateway's business, so the mapping lives here and not on the errors
(credence_common/contracts/errors.py), which services raise and the bus carries without knowing about HTTP."""

from __future__ import annotations

from credence_common.contracts.errors import (
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

HTTP_STATUS: dict[type[CredenceError], int] = {
    BadRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    InvalidInput: 422,
    RateLimited: 429,
    ServiceUnavailable: 503,
}


def http_status(error: CredenceError) -> int:
    """The status of ``error``'s class, or of the nearest class above it in the table; a bare refusal is a 400."""
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 400
