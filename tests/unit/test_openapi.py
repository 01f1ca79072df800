from __future__ import annotations

import json

import pytest

from gateway.api import ROUTES
from gateway.openapi import _openapi_path, build_openapi


@pytest.fixture(scope="module")
def document() -> dict:
    return build_openapi()


def operation(document: dict, route) -> dict:
    return document["paths"][_openapi_path(route.path)][route.method.lower()]


def iter_refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from iter_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from iter_refs(item)


def test_document_header(document):
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] == "Credence API"
    assert document["info"]["version"] == "0.1.0"
    assert build_openapi("9.9.9")["info"]["version"] == "9.9.9"
    json.dumps(document)  # serialisable as served


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_every_route_is_documented_with_method_and_operation_id(document, route):
    op = operation(document, route)
    assert op["operationId"] == route.name
    assert op["summary"] == route.summary
    assert op["tags"] == [route.tag]
    assert op["x-roles"] == list(route.roles)
    assert str(route.success_status) in op["responses"]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_security_follows_roles(document, route):
    op = operation(document, route)
    if "public" in route.roles:
        assert "security" not in op
    else:
        assert op["security"] == [{"bearerAuth": []}]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_request_and_response_models_are_referenced(document, route):
    op = operation(document, route)
    if route.response_model is not None:
        schema = op["responses"][str(route.success_status)]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{route.response_model.__name__}"}
    if route.request_model is not None:
        optional_body = not any(f.is_required() for f in route.request_model.model_fields.values())
        assert op["requestBody"]["required"] is not optional_body
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{route.request_model.__name__}"}
    if route.header_params:
        documented = {p["name"]: p["required"] for p in op["parameters"] if p["in"] == "header"}
        assert documented == {name: required for name, required, _ in route.header_params}
    if route.documented_body is not None:
        assert op["requestBody"]["required"] is True
        documented = op["requestBody"]["content"]["application/json"]["schema"]
        assert documented == {"$ref": f"#/components/schemas/{route.documented_body.__name__}"}


def test_operation_ids_are_unique(document):
    ids = [op["operationId"] for methods in document["paths"].values() for op in methods.values()]
    assert len(ids) == len(set(ids))
    # plus /health, /ready and /asyncapi.json, and the three public pages (HTML)
    assert len(ids) == len(ROUTES) + 3 + 3


def test_route_count_matches(document):
    documented = {(path, method) for path, methods in document["paths"].items() for method in methods}
    for route in ROUTES:
        assert (_openapi_path(route.path), route.method.lower()) in documented


def test_every_ref_resolves_to_a_component_schema(document):
    schemas = document["components"]["schemas"]
    refs = list(iter_refs(document))
    assert refs, "the document references schemas"
    prefix = "#/components/schemas/"
    for ref in refs:
        assert ref.startswith(prefix), ref
        assert ref[len(prefix):] in schemas, ref
    assert "ErrorResponse" in schemas


def test_errors_are_described_with_error_response(document):
    for methods in document["paths"].values():
        for op in methods.values():
            # the gateway's own documents and probes, and the HTML pages
            if op["operationId"] in ("health", "ready", "asyncapi") or "public pages" in op["tags"]:
                continue
            for status in ("401", "422", "503"):
                ref = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ErrorResponse"


def test_bearer_security_scheme(document):
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


@pytest.mark.parametrize(
    "werkzeug, openapi",
    [("/a/<thing_id>", "/a/{thing_id}"), ("/a/<string:thing_id>/b/<int:n>", "/a/{thing_id}/b/{n}"),
     ("/plain", "/plain")],
)
def test_path_parameters_are_converted(werkzeug, openapi):
    assert _openapi_path(werkzeug) == openapi


def test_every_path_parameter_is_declared():
    import re

    from gateway.openapi import build_openapi

    for path, operations in build_openapi()["paths"].items():
        for method, operation in operations.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{([^}]+)}", path)), f"{method.upper()} {path}"


def test_an_outside_validator_accepts_the_document(document):
    # openapi-spec-validator, the validator most OpenAPI tooling runs: it refused a parameter declared twice
    from openapi_spec_validator import OpenAPIV31SpecValidator

    problems = [error.message for error in OpenAPIV31SpecValidator(document).iter_errors()]
    assert problems == []


def test_a_route_that_documents_idempotency_key_itself_declares_it_once(document):
    parameters = document["paths"]["/api/v1/payment-orders"]["post"]["parameters"]
    keys = [parameter for parameter in parameters if parameter["name"].lower() == "idempotency-key"]
    assert len(keys) == 1 and keys[0]["in"] == "header"
    assert keys[0]["description"].startswith("Your key for this request")  # the route's own words


def test_the_public_pages_are_documented_with_the_paths_the_gateway_serves(document):
    from gateway.dispatch import OPERATIONS

    documented = {(path, method) for path, methods in document["paths"].items() for method in methods}
    for name, method, path in OPERATIONS:
        if name != "openapi":  # the document itself
            assert (_openapi_path(path), method.lower()) in documented, name
    assert "text/html" in document["paths"]["/verify"]["post"]["responses"]["200"]["content"]


def _schema_at(document: dict, schema: dict, pointer: str) -> dict | None:
    """The JSON schema of the value ``pointer`` (e.g. /certificates/0/certificate_id) picks out of an answer whose
    schema is ``schema``; None when no answer can have it."""
    for segment in pointer.split("/")[1:]:
        while True:
            if "$ref" in schema:
                schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
            elif "anyOf" in schema:  # Optional[X]: the X
                schema = next(option for option in schema["anyOf"] if option.get("type") != "null")
            else:
                break
        if segment.isdigit() and schema.get("type") == "array":
            schema = schema["items"]
        elif segment in schema.get("properties", {}):
            schema = schema["properties"][segment]
        else:
            return None
    return schema


def test_every_link_names_a_real_operation_parameter_and_answer_field():
    """Issue #19 item 7 and #22 item 6: the links between operations (``Route.links``, rendered by gateway/openapi.py
    into the success answer's ``links``) name an operation of the document by its operationId, fill a parameter
    that operation has, from a field the source operation's answer has (a JSON pointer into its schema, through
    lists by index)."""
    document = build_openapi()
    by_name = {route.name: route for route in ROUTES}
    operations = {operation["operationId"]: operation for item in document["paths"].values()
                  for operation in item.values()}
    followed = 0
    for route in ROUTES:
        answers = operation(document, route)["responses"]
        if not route.links:
            assert not any("links" in answer for answer in answers.values()), route.name
            continue
        success = str(route.success_status)
        body = answers[success]["content"]["application/json"]["schema"]
        links = answers[success]["links"]
        assert route.accepted_status == ("links" in answers.get("202", {})), route.name
        for target, parameter, pointer in route.links:
            assert target in operations and target in by_name, (route.name, target)
            declared = {p["name"] for p in operations[target].get("parameters", []) if p["in"] == "path"}
            assert parameter in declared, (route.name, target, parameter)
            field = _schema_at(document, body, pointer)
            assert field is not None, (route.name, pointer)
            assert links[target]["operationId"] == target
            assert links[target]["parameters"][parameter] == f"$response.body#{pointer}"
            followed += 1
        assert len(links) == len({target for target, _parameter, _pointer in route.links}), route.name
    assert followed >= 60


def test_the_main_resource_chains_are_linked():
    """Issue #22 item 6: the chains a client follows, from where an id appears to where it is used, are links, so
    schemathesis' stateful phase (tests/e2e/test_schemathesis.py) calls the later operations with real ids."""
    linked = {(route.name, target) for route in ROUTES for target, _parameter, _pointer in route.links}
    for chain in [("my_certificates", "my_certificate"), ("my_certificates", "confirm_certificate"),
                  ("my_certificates", "apply_for_replacement"), ("apply_for_replacement", "withdraw_replacement"),
                  ("import_results", "import_report"), ("create_payment_order", "payment_order"),
                  ("create_payment_order", "close_payment_order"), ("my_payment_orders", "payment_order"),
                  ("request_report", "report_answer"), ("request_report", "close_report"),
                  ("my_reports", "create_share_code"), ("create_share_code", "revoke_share_code"),
                  ("my_results", "request_score_review"), ("evaluation_queue", "evaluate_result"),
                  ("production_batches", "close_batch"), ("replacement_applications", "start_replacement")]:
        assert chain in linked, chain


def test_a_link_to_an_operation_the_document_lacks_is_left_out():
    """Outside development the sandbox payer is not mounted (Route.development_only): no link may point at it."""
    mounted = tuple(route for route in ROUTES if not route.development_only)
    document = build_openapi(routes=mounted)
    names = {operation["operationId"] for item in document["paths"].values() for operation in item.values()}
    assert "sandbox_provider_payment" not in names
    targets = {link["operationId"] for item in document["paths"].values() for operation in item.values()
               for answer in operation.get("responses", {}).values() for link in answer.get("links", {}).values()}
    assert targets <= names and "payment_order" in targets
    development = build_openapi()["paths"]["/api/v1/payment-orders"]["post"]["responses"]["201"]["links"]
    assert development["sandbox_provider_payment"]["parameters"] == {"order_number": "$response.body#/order_number"}


def test_opening_a_payment_order_documents_jsapi_with_the_payers_openid(document):
    """native (a QR code) stays the default; jsapi takes the payer's openid, whose format is documented, and answers
    the wx.requestPayment parameters."""
    schemas = document["components"]["schemas"]
    request = schemas["CreatePaymentOrder"]["properties"]
    assert request["method"]["default"] == "native" and request["method"]["enum"] == ["native", "jsapi"]
    openid = next(option for option in request["payer_openid"]["anyOf"] if option.get("type") == "string")
    assert openid["pattern"] == "^[A-Za-z0-9_-]{6,128}$"
    answer = schemas["PaymentOrderView"]["properties"]
    assert answer["pay_method"]["default"] == "native"
    assert {"$ref": "#/components/schemas/JsapiPayParams"} in answer["jsapi_pay_params"]["anyOf"]
    assert set(schemas["JsapiPayParams"]["required"]) == {"appId", "timeStamp", "nonceStr", "package", "signType",
                                                          "paySign"}


def test_the_notification_route_documents_wechat_pays_headers(document):
    """WeChat Pay posts its notifications with these headers (the sandbox with its own): each is documented, none
    required by the route itself (each provider's are required for that provider: the path names it)."""
    parameters = document["paths"]["/api/v1/payments/notifications/{provider}"]["post"]["parameters"]
    headers = {p["name"]: p for p in parameters if p["in"] == "header"}
    for name in ("Wechatpay-Signature", "Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Serial",
                 "Wechatpay-Signature-Type", "Sandbox-Signature", "Sandbox-Timestamp", "Sandbox-Nonce"):
        assert name in headers and headers[name]["required"] is False and headers[name]["description"], name
    assert "timestamp\\nnonce\\nbody\\n" in headers["Wechatpay-Signature"]["description"]
