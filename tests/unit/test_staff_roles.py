"""Staff roles at the gateway: every route staff may call names the staff roles it needs, and a staff token without
one of them is refused (403 role_required) before the body is read or any service is asked; the signed actor the
gateway sends carries the token's roles (credence_common/contracts/staff_roles.py)."""

from __future__ import annotations

import json

import pytest

from credence_common.contracts.staff_roles import DUTIES, STAFF_ROLES, from_stored, staff_roles, stored
from credence_common.security.actor_tokens import ActorVerifier
from gateway.api import ROUTES
from gateway.dispatch import Gateway, Incoming, dispatch
from gateway.routing import Route
from tests.integration.conftest import TEST_ACTOR_SIGNING_KEY, TEST_ACTOR_VERIFY_KEYS


def test_every_route_staff_may_call_names_known_staff_roles():
    unnamed = [route.name for route in ROUTES
               if "staff" in route.roles and "public" not in route.roles and not route.staff_roles]
    assert unnamed == [], "name the staff role(s) of these routes (Route.staff_roles)"
    for route in ROUTES:
        assert set(route.staff_roles) <= set(STAFF_ROLES), route.name
        assert not route.staff_roles or "staff" in route.roles, route.name


def test_every_staff_role_is_needed_somewhere_and_described():
    needed = {role for route in ROUTES for role in route.staff_roles}
    assert needed == set(STAFF_ROLES) == set(DUTIES)


def test_roles_are_kept_in_one_order_once_and_unknown_ones_are_refused_or_skipped():
    assert staff_roles(["admin", "recorder", "admin"]) == ("recorder", "admin")
    assert stored(["expert", "recorder"]) == "recorder,expert" and stored([]) == ""
    assert from_stored("recorder,expert") == ("recorder", "expert") and from_stored("") == ()
    assert from_stored("expert,auditor") == ("expert",)  # a role of a newer release confers nothing here
    with pytest.raises(ValueError, match="unknown staff role"):
        staff_roles(["recorder", "boss"])


class Handler:
    def __init__(self):
        self.actors = []

    def __call__(self, call):
        self.actors.append(call.actor)
        return {"ok": True}


@pytest.fixture
def gateway(monkeypatch) -> Gateway:
    monkeypatch.setenv("CREDENCE_ENV", "development")
    return Gateway({"JWT_SECRET": "unit-jwt-secret-of-enough-length-0123456789",
                    "ACTOR_SIGNING_KEY": TEST_ACTOR_SIGNING_KEY, "AMQP_URI": "pyamqp://guest:guest@127.0.0.1:5672/"},
                   "development")


def ask(gateway: Gateway, route: Route, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = Incoming(method=route.method, path=route.path, headers=headers, remote_addr="10.0.0.1",
                       content_length=2)
    answer = dispatch(gateway, route, request, {}, lambda _n: b"{}", rpc=None, context={})
    return answer.status, json.loads(answer.body)


def test_a_staff_token_without_the_routes_role_is_refused_before_the_handler(gateway):
    handler = Handler()
    route = Route(name="record", method="POST", path="/api/v1/exam-results", summary="x", roles=("staff", "candidate"),
                  staff_roles=("recorder", "admin"), handler=handler)
    expert = gateway.tokens.issue("staff:li", "staff", staff_roles=["expert"])["access_token"]
    status, body = ask(gateway, route, expert)
    assert status == 403 and body["error"]["code"] == "role_required"
    assert "recorder or admin" in body["error"]["message"]
    assert body["error"]["details"] == [{"field": "staff_role", "message": "recorder"},
                                        {"field": "staff_role", "message": "admin"}]
    older = gateway.tokens.issue("staff:old", "staff")["access_token"]  # from before tokens named roles: none
    assert ask(gateway, route, older)[1]["error"]["code"] == "role_required"
    assert handler.actors == []

    recorder = gateway.tokens.issue("staff:wu", "staff", staff_roles=["recorder", "support"])["access_token"]
    assert ask(gateway, route, recorder) == (200, {"ok": True})
    # a candidate is not staff: the staff roles do not apply to it
    candidate = gateway.tokens.issue("cand-1", "candidate")["access_token"]
    assert ask(gateway, route, candidate) == (200, {"ok": True})
    verifier = ActorVerifier.from_spec(TEST_ACTOR_VERIFY_KEYS)
    assert [verifier.verify(actor) for actor in handler.actors] == [
        {"subject": "staff:wu", "role": "staff", "staff_roles": ["recorder", "support"]},
        {"subject": "cand-1", "role": "candidate"}]
