"""pydantic validation at the edge of every RPC: bad input becomes a typed ``InvalidInput``."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from credence_common.errors import InvalidInput

Model = TypeVar("Model", bound=BaseModel)


def describe_validation_error(exc: ValidationError) -> list[dict]:
    details = []
    for err in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in err.get("loc", ())) or "(body)"
        details.append({"field": field, "message": err.get("msg", "invalid")})
    return details


def parse(model: type[Model], data) -> Model:
    """Validate ``data`` (a dict from the wire) into ``model`` or raise ``InvalidInput``.

    The message names the fields so that a clerk reading a 422 knows what to fix; the input values
    themselves are left out because they may hold personal data.
    """
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = describe_validation_error(exc)
        fields = ", ".join(d["field"] for d in details)
        raise InvalidInput("invalid_input", f"Invalid or missing fields: {fields}", details) from None
