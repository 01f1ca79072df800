"""pydantic validation at the edge of every RPC: bad input becomes a typed ``InvalidInput``."""

from __future__ import annotations

import re
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from credence_common.contracts.errors import InvalidInput

Model = TypeVar("Model", bound=BaseModel)
# C0 controls but tab, newline and carriage return, and DEL; one regex search instead of a Python test per
# character (every RPC argument of every service passes here)
CONTROL_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def describe_validation_error(exc: ValidationError) -> list[dict[str, str]]:
    details = []
    for err in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in err.get("loc", ())) or "(body)"
        details.append({"field": field, "message": err.get("msg", "invalid")})
    return details


def control_character_fields(data: object, path: str = "") -> list[str]:
    """Fields holding control characters (NUL, escape, ...): never legitimate in this domain, and
    PostgreSQL refuses NUL outright."""
    found = []
    if isinstance(data, str):
        if CONTROL_CHARACTER.search(data):
            found.append(path or "(body)")
    elif isinstance(data, dict):
        for key, value in data.items():
            found += control_character_fields(value, f"{path}.{key}" if path else str(key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += control_character_fields(value, f"{path}.{index}" if path else str(index))
    return found


def parse(model: type[Model], data: object) -> Model:
    """Validate ``data`` (a dict from the wire) into ``model`` or raise ``InvalidInput``.

    The message names the fields so that a clerk reading a 422 knows what to fix; the input values
    themselves are left out because they may hold personal data.
    """
    if isinstance(data, model):
        return data
    bad_fields = control_character_fields(data)
    if bad_fields:
        raise InvalidInput("invalid_characters", f"Control characters are not allowed in: {', '.join(bad_fields)}",
                           [{"field": field, "message": "contains control characters"} for field in bad_fields])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = describe_validation_error(exc)
        fields = ", ".join(d["field"] for d in details)
        raise InvalidInput("invalid_input", f"Invalid or missing fields: {fields}", details) from None
