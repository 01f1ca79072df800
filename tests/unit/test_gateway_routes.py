"""The route tables of gateway/routes/: a declared forward (gateway/routing.py ``Rpc``) makes exactly the call the
hand-written forwarder it replaced made, the batched and token-issuing routes keep their own helpers, and a
``Route`` is written with keywords only."""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel

from gateway.api import ROUTES, Route
from gateway.auth import Principal
from gateway.routes import certificates, identity, payments, scoring, verification
from gateway.routing import ACTOR, BODY, Call, Flag, Header, Param, Query, Rpc

BY_NAME = {route.name: route for route in ROUTES}


class RecordingRpc:
    """``call.rpc`` as a handler sees it: records each call and answers what a sign-in answers."""

    def __init__(self):
        self.calls: list[tuple] = []

    def call(self, service, method, *args):
        self.calls.append((service, method, *args))
        return {"subject": "cand-1", "role": "candidate", "refresh_token": "refresh-1"}

    def public_check(self, request, client):
        self.calls.append(("public_check", request, client))
        return {"status": "valid"}

    def candidate_results(self, principal, candidate_id):
        self.calls.append(("candidate_results", principal, candidate_id))
        return {"results": []}


class Signer:
    def sign(self, subject, role, **claims):
        return f"actor-of-{subject}-{role}-{claims['institution_id']}"


class Tokens:
    def issue(self, subject, role, **claims):
        return {"access_token": f"jwt-{subject}-{role}"}


class Body(BaseModel):
    amount: int = 5


# the shapes of query string a flag or an optional parameter must read as before: absent, empty, yes, no, a value
QUERIES = [{}, {"status": "", "overdue": "", "all": "", "flagged": "", "program_code": "", "order_number": ""},
           {"status": "open", "overdue": "true", "all": "1", "flagged": "yes", "program_code": "ZX", "sitting": "2026"},
           {"overdue": "no", "all": "false", "flagged": "0", "order_number": "PO-1"}]


def make_call(query: dict, *, body=None, headers=None, institution_id="inst-9") -> Call:
    return Call(principal=Principal("cand-1", "candidate", institution_id=institution_id),
                body=Body() if body is None else body, params={"batch_id": "b-1", "result_id": "r-1",
                                                               "certificate_id": "c-1", "report_code": "RC-1",
                                                               "fee_code": "exam", "order_number": "PO-7"},
                rpc=RecordingRpc(), tokens=Tokens(), headers=headers or {}, client_address="10.0.0.9", query=query,
                actor_signer=Signer())


# route -> the call its hand-written forwarder made (written as it was), one or more of each kind of argument
FORMER_FORWARDERS = {
    "list_programs": lambda call: ("scoring", "list_programs"),
    "list_releases": lambda call: ("scoring", "list_releases", call.actor),
    "import_report": lambda call: ("scoring", "import_report", call.actor, call.params["batch_id"]),
    "my_record": lambda call: ("scoring", "candidate_record", call.actor, call.principal.subject),
    "grant_exemption": lambda call: ("scoring", "grant_exemption", call.actor, call.body.model_dump(mode="json")),
    "evaluate_result": lambda call: ("scoring", "evaluate_result", call.actor, call.params["result_id"],
                                     call.body.model_dump(mode="json")),
    "evaluation_queue": lambda call: ("scoring", "evaluation_queue", call.actor,
                                      call.query.get("program_code", ""), call.query.get("sitting", "")),
    "request_mobile_code": lambda call: ("identity", "request_mobile_code", call.body.model_dump(mode="json"),
                                         call.client_address),
    "confirm_my_identity_session": lambda call: ("identity", "confirm_identity_session", call.actor,
                                                 call.principal.subject, call.body.model_dump(mode="json")),
    "my_certificate_history": lambda call: ("certificates", "certificate_history", call.actor,
                                            call.params["certificate_id"]),
    "certificate_correction_requests": lambda call: ("certificates", "correction_requests", call.actor,
                                                     call.query.get("all") not in ("1", "true", "yes")),
    "revocation_cases": lambda call: ("certificates", "revocation_cases", call.actor, call.query.get("status") or None,
                                      call.query.get("overdue") in ("1", "true", "yes")),
    "my_replacement_applications": lambda call: ("certificates", "replacement_applications", call.actor,
                                                 call.query.get("status") or None),
    "my_payment_orders": lambda call: ("payments", "orders_for_payer", call.actor, "candidate",
                                       call.principal.subject),
    "institution_payment_dues": lambda call: ("payments", "dues_for_payer", call.actor, "institution",
                                              call.principal.institution_id or ""),
    "set_fee": lambda call: ("payments", "set_fee", call.actor, call.params["fee_code"],
                             call.body.model_dump(mode="json")),
    "list_refunds": lambda call: ("payments", "refunds", call.actor, call.query.get("overdue") in ("1", "true", "yes"),
                                  call.query.get("order_number") or None),
    "payment_incidents": lambda call: ("payments", "incidents", call.actor,
                                       call.query.get("flagged") in ("1", "true", "yes")),
    "report_answer": lambda call: ("verification", "report_answer", call.params["report_code"], call.client_address,
                                   "report_code"),
    "open_shared_report": lambda call: ("verification", "open_shared_report", call.body.model_dump(mode="json"),
                                        call.client_address),
}


@pytest.mark.parametrize("name", sorted(FORMER_FORWARDERS))
@pytest.mark.parametrize("query", QUERIES, ids=["no-query", "empty", "set", "unset"])
def test_a_declared_forward_makes_the_call_its_forwarder_made(name, query):
    route = BY_NAME[name]
    assert isinstance(route.handler, Rpc)
    for institution_id in ("inst-9", None):
        call = make_call(query, institution_id=institution_id)
        answer = route.handler(call)
        assert call.rpc.calls == [FORMER_FORWARDERS[name](make_call(query, institution_id=institution_id))]
        assert answer == {"subject": "cand-1", "role": "candidate", "refresh_token": "refresh-1"}  # as it came


def test_the_idempotency_key_is_forwarded_whatever_its_case_and_none_without_one():
    route = BY_NAME["create_payment_order"]
    for headers, key in (({"idempotency-key": "k-1"}, "k-1"), ({"IDEMPOTENCY-KEY": "k-2", "Cookie": "c"}, "k-2"),
                         ({}, None)):
        call = make_call({}, headers=headers)
        route.handler(call)
        assert call.rpc.calls == [("payments", "create_order", call.actor, {"amount": 5}, key)]


def test_a_body_less_request_forwards_none():
    call = make_call({})
    call.body = None
    BY_NAME["logout"].handler(call)
    assert call.rpc.calls == [("identity", "logout", None)]


def test_a_sign_in_forwards_then_issues_the_tokens_with_identitys_refresh_token():
    call = make_call({})
    assert BY_NAME["login"].handler(call) == {"access_token": "jwt-cand-1-candidate", "refresh_token": "refresh-1"}
    assert call.rpc.calls == [("identity", "login", {"amount": 5}, "10.0.0.9")]
    assert repr(BY_NAME["login"].handler) == "IssueTokens(Rpc('identity', 'login', BODY, CLIENT))"


def test_the_batched_routes_keep_their_batching_helpers():
    call = make_call({})
    BY_NAME["my_results"].handler(call)  # the principal, signed with the batch, never a single actor
    BY_NAME["public_certificate_check"].handler(call)
    assert call.rpc.calls == [("candidate_results", call.principal, "cand-1"),
                              ("public_check", {"amount": 5}, "10.0.0.9")]
    assert "actor" not in call.__dict__  # neither signed an actor of its own


def test_a_forward_reads_like_the_call_it_makes():
    assert repr(BY_NAME["import_report"].handler) == "Rpc('scoring', 'import_report', ACTOR, Param('batch_id'))"
    assert repr(Rpc("s", "m", Query("status"), Query("p", ""), Flag("all", negated=True), Header("K"), "x")) == \
        "Rpc('s', 'm', Query('status'), Query('p', ''), Flag('all', negated=True), Header('K'), 'x')"
    assert Rpc("s", "m", ACTOR, BODY) == Rpc("s", "m", ACTOR, BODY) != Rpc("s", "m", BODY, ACTOR)
    assert len(set(ROUTES)) == len(ROUTES)  # a Route stays hashable


@pytest.mark.parametrize("module", [identity, scoring, certificates, payments, verification],
                         ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_each_table_forwards_to_its_own_service_with_path_parameters_of_its_own_path(module):
    service = module.__name__.rsplit(".", 1)[-1]
    for route in module.ROUTES:
        forward = getattr(route.handler, "forward", route.handler)  # IssueTokens wraps one
        if not isinstance(forward, Rpc):
            continue
        assert forward.service == service, route.name
        params = set(re.findall(r"<(?:\w+:)?(\w+)>", route.path))
        assert {arg.name for arg in forward.args if isinstance(arg, Param)} <= params, route.name


def test_the_hand_written_handlers_are_only_those_that_do_more_than_forward():
    hand_written = sorted(route.name for route in ROUTES if not isinstance(getattr(route.handler, "forward",
                                                                                   route.handler), Rpc))
    assert hand_written == ["batch_proof_pdf", "import_errors_csv", "import_results", "my_results",
                            "payment_notification", "public_certificate_check", "report_pdf"]


def test_a_route_takes_keywords_only():
    fields = dict(name="x", method="GET", path="/api/v1/x", summary="x", roles=("staff",), handler=Rpc("s", "m"))
    assert Route(**fields).name == "x"
    with pytest.raises(TypeError):
        Route("x", "GET", "/api/v1/x", summary="x", roles=("staff",), handler=Rpc("s", "m"))
    with pytest.raises(TypeError):
        Route(*fields.values())
