"""OpenAPI 3.1 document generated from the route table and its pydantic models."""

from __future__ import annotations

import re

from pydantic.json_schema import models_json_schema

from credence_common.contracts.common import ErrorResponse
from gateway.api import ROUTES, Route

ERROR_STATUSES = {
    "400": "Malformed request (e.g. body is not JSON)",
    "401": "Missing, invalid or expired token, or bad credentials/signature",
    "403": "The token's role may not do this, a staff token lacks the staff role it needs (role_required), or "
           "one person would take two parts in one result's sign-off (same_person_cannot_sign)",
    "404": "Not found",
    "409": "Conflicts with the current state",
    "422": "Invalid input (fields named in error.details)",
    "405": "Method not allowed on this path",
    "429": "Too many requests",
    "500": "Unexpected failure in the gateway (no details are given)",
    "502": "A service failed unexpectedly",
    "503": "A service is not running, did not answer in time, or could not reach its database: try again",
}


def _html(description: str) -> dict:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


# The public pages a person opens in a browser (gateway/dispatch.py OPERATIONS): HTML, not JSON, but part of the
# gateway's surface, so an outside client finds them here too
_CHECK_FORM = {"type": "object", "required": ["holder_name", "certificate_number"], "properties": {
    "holder_name": {"type": "string", "maxLength": 40, "description": "The holder's name as on the certificate"},
    "certificate_number": {"type": "string", "maxLength": 40, "description": "15 digits, the last a check digit"}}}
PUBLIC_PAGES = {
    "/verify": {
        "get": {"operationId": "verify_page", "summary": "The public certificate check, as a web page (查询)",
                "tags": ["public pages"], "responses": {"200": _html("The check form")}},
        "post": {"operationId": "verify_submit", "summary": "Submit the check form; the page shows the answer",
                 "tags": ["public pages"],
                 "requestBody": {"required": True,
                                 "content": {"application/x-www-form-urlencoded": {"schema": _CHECK_FORM}}},
                 "responses": {"200": _html("The certificate, masked, and whether it is valid, revoked or "
                                            "superseded"),
                               "400": _html("The form is too large"),
                               "404": _html("No certificate matches this name and number"),
                               "422": _html("Not a valid certificate number"),
                               "429": _html("Too many checks from this address or of this number")}}},
    "/r/{report_code}": {
        "get": {"operationId": "report_page", "summary": "A verification report by its code (the QR code's link)",
                "tags": ["public pages"],
                "parameters": [{"name": "report_code", "in": "path", "required": True,
                                "schema": {"type": "string", "pattern": "^[A-Za-z0-9]{32}$",
                                           "description": "32 letters and digits (base32)"}},
                               {"name": "via", "in": "query", "required": False,
                                "schema": {"type": "string", "enum": ["qr"]},
                                "description": "qr when the QR code was scanned (the holder's access log says so)"}],
                "responses": {"200": _html("The report's authoritative answer: valid, expired, closed, revoked or "
                                           "superseded, with the masked details"),
                              "404": _html("No such report"),
                              "422": _html("Not a report code (32 letters and digits)"),
                              "429": _html("Too many requests")}}},
}


def _links(route: Route, names: set[str]) -> dict:
    """The OpenAPI links of ``route``'s answer (``Route.links``: what it lets a client call next, with which of its
    fields), to the operations the document has (``names``: a development-only target is absent elsewhere). Clients
    and tools follow them (schemathesis' stateful phase does, in tests/e2e/test_schemathesis.py), so later
    operations run against things that exist."""
    links: dict[str, dict] = {}
    for target, parameter, pointer in route.links:
        if target in names:
            link = links.setdefault(target, {"operationId": target, "parameters": {}})
            link["parameters"][parameter] = f"$response.body#{pointer}"
    return links


def _openapi_path(path: str) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", path)


def _models(routes: tuple[Route, ...]):
    models = {ErrorResponse}
    for route in routes:
        for model in (route.request_model, route.response_model, route.documented_body):
            if model is not None:
                models.add(model)
    return sorted(models, key=lambda m: m.__name__)


def build_openapi(version: str = "0.1.0", routes: tuple[Route, ...] = ROUTES) -> dict:
    """The document of ``routes`` (the gateway passes the routes it mounts in its environment)."""
    models = _models(routes)
    key_map, schema = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
    )
    refs = {model: key_map[(model, "validation")]["$ref"] for model in models}
    paths: dict = {}
    route_names = {route.name for route in routes}
    for route in routes:
        operation = {
            "operationId": route.name,
            "summary": route.summary,
            "tags": [route.tag],
            "responses": {
                str(route.success_status): {
                    "description": "Success",
                    "content": {"application/json": {"schema": {"$ref": refs[route.response_model]}}}
                    if route.response_model else
                    {route.content_type.split(";")[0]: {"schema": {"type": "string"}}}
                    if route.content_type != "application/json" else {},
                },
                **{
                    status: {"description": text,
                             "content": {"application/json": {"schema": {"$ref": refs[ErrorResponse]}}}}
                    for status, text in ERROR_STATUSES.items()
                },
            },
            "x-roles": list(route.roles),
        }
        if route.staff_roles:
            operation["x-staff-roles"] = list(route.staff_roles)  # a staff caller holds one of them (docs/access.md)
        if route.accepted_status:
            operation["responses"]["202"] = {
                "description": "Accepted: done in the background; follow the Location header",
                "headers": {"Location": {"description": "Where the work's progress and outcome appear",
                                         "schema": {"type": "string"}}},
                "content": {"application/json": {"schema": {"$ref": refs[route.response_model]}}}}
        links = _links(route, route_names)
        if links:
            operation["responses"][str(route.success_status)]["links"] = links
            if route.accepted_status:  # the batch queued has the same identity as the batch done
                operation["responses"]["202"]["links"] = links
        if "public" not in route.roles:
            operation["security"] = [{"bearerAuth": []}]
        body_model = route.request_model or route.documented_body
        if body_model is not None:
            every_field_optional = not any(f.is_required() for f in body_model.model_fields.values())
            operation["requestBody"] = {
                "required": not every_field_optional,
                "content": {"application/json": {"schema": {"$ref": refs[body_model]}}},
            }
        if route.raw_body and not route.documented_body:
            operation["requestBody"] = {"required": True, "content": {
                "text/csv": {"schema": {"type": "string"}}, "application/x-ndjson": {"schema": {"type": "string"}}}}
            operation["parameters"] = [{"name": "format", "in": "query", "required": False,
                                        "schema": {"type": "string", "enum": ["csv", "jsonl"]}}]
        path_names = re.findall(r"<(?:[^:>]+:)?([^>]+)>", route.path)
        if path_names:
            operation.setdefault("parameters", []).extend(
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in path_names)
        own_headers = {name.lower() for name, _required, _text in route.header_params or ()}
        # a route that documents Idempotency-Key itself (what a retry returns there) is not given the generic text
        # too: OpenAPI allows a parameter (name and location) once per operation
        if route.method != "GET" and route.replayable and "idempotency-key" not in own_headers:
            operation.setdefault("parameters", []).append(
                {"name": "Idempotency-Key", "in": "header", "required": False,
                 "description": "Any unique string (a UUID): a retry with the same key and request gets the first "
                                "answer, and the effect happens once", "schema": {"type": "string", "maxLength": 200}})
        if route.header_params:
            operation.setdefault("parameters", []).extend(
                {"name": name, "in": "header", "required": required, "description": text,
                 "schema": {"type": "string"}} for name, required, text in route.header_params)
        paths.setdefault(_openapi_path(route.path), {})[route.method.lower()] = operation
    for path, summary in (("/health", "Liveness"), ("/ready", "Readiness (the broker answers)")):
        paths[path] = {"get": {"operationId": path.strip("/"), "summary": summary, "tags": ["operations"],
                               "responses": {"200": {"description": "OK"}, "503": {"description": "Not ready"}}}}
    # the other document the gateway serves: the event channels, for downstream subscribers
    paths["/asyncapi.json"] = {"get": {
        "operationId": "asyncapi", "summary": "The AsyncAPI 3.0 document of the event channels (exchange, routing "
        "key, CloudEvents envelope and payload schema of every event type)", "tags": ["operations"],
        "responses": {"200": {"description": "The AsyncAPI document",
                              "content": {"application/json": {"schema": {"type": "object"}}}}}}}
    paths.update(PUBLIC_PAGES)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Credence API", "version": version,
                 "description": "Registration, scores, certificates, payments and public verification. The events "
                                "published for downstream systems are described in /asyncapi.json."},
        "paths": paths,
        "components": {
            "schemas": schema.get("$defs", {}),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
