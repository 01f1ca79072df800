"""Who may do what, for every route: anonymous, candidate A, candidate B, a training institution and staff.

Two tables, both checked against the running platform:
1. the role gate: every route in ``gateway.api.ROUTES`` refuses every role it does not serve (401 for an
   anonymous caller, 403 for a signed-in one), before reading the body;
2. ownership: every route that names one of candidate A's things (certificate, order, result, report, share
   code, candidate id) refuses candidate B and the institution (403 or 404, never a 2xx), and A's things
   are unchanged afterwards. A test checks that each such route is in the second table, so a new route
   cannot slip past it;
3. staff roles: every route staff may call refuses a staff account holding none of its staff roles (403
   role_required), for an account of each single role and one without roles (credence_common/contracts/staff_roles.py).
"""

from __future__ import annotations

import re
import uuid

import pytest
import requests

from credence_common.contracts.staff_roles import STAFF_ROLES
from gateway.api import ROUTES
from tests.e2e.conftest import SECRETS

# also against the nameko gateway (GATEWAY_SERVER=nameko), on SQLite (tests/e2e/conftest.py)
ALSO_ON_THE_NAMEKO_GATEWAY = True
ROLES = {"anonymous": "public", "candidate_a": "candidate", "candidate_b": "candidate",
         "institution": "institution", "staff": "staff"}

# Routes naming something of candidate A's, with the roles that could reach them past the role gate.
OWNED_BY_A = {
    ("GET", "/api/v1/me/certificates/<certificate_id>"): {},
    ("POST", "/api/v1/me/certificates/<certificate_id>/confirmation"): {
        "photo_reference": "upload/x.jpg", "delivery_address": "北京市海淀区某路1号"},
    ("POST", "/api/v1/me/certificates/<certificate_id>/correction-requests"): {
        "field": "holder_name", "requested_value": "李四", "reason": "mine now"},
    ("GET", "/api/v1/me/certificates/<certificate_id>/history"): {},
    ("POST", "/api/v1/me/certificates/<certificate_id>/replacement-applications"): {"kind": "reissue",
                                                                                    "reason": "lost it"},
    ("POST", "/api/v1/me/replacement-applications/<application_id>/withdrawal"): {},
    ("POST", "/api/v1/me/results/<result_id>/review"): {"reason": "please look again"},
    ("POST", "/api/v1/me/verification-reports/<report_code>/closure"): {},
    ("POST", "/api/v1/me/verification-reports/<report_code>/extension"): {},
    ("GET", "/api/v1/me/verification-reports/<report_code>/report.pdf"): {},
    ("POST", "/api/v1/me/verification-reports/<report_code>/share-codes"): {"valid_hours": 2},
    ("POST", "/api/v1/me/share-codes/<share_id>/revocation"): {},
    ("GET", "/api/v1/payment-orders/<order_number>"): {},
    ("POST", "/api/v1/payment-orders/<order_number>/closure"): {},
    ("POST", "/api/v1/sandbox-provider/orders/<order_number>/payment"): {},
    ("GET", "/api/v1/candidates/<candidate_id>"): {},
    ("POST", "/api/v1/candidates/<candidate_id>/identity-confirmation"): {"decision": "approve"},
}
INTRUDERS = ("candidate_b", "institution")


def call(platform, method: str, path: str, token: str | None, body=None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, platform.gateway_url + path, headers=headers, json=body, timeout=20)


def fill(path: str, values: dict) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: str(values.get(m.group(1), "x" + m.group(1))), path)


@pytest.fixture(scope="module")
def people(platform, journey):
    from deploy.journey import run_journey

    a = journey["candidate_token"]
    staff = journey["staff_token"]
    b = run_journey(platform.gateway_url, say=lambda _line: None,
                    staff_password=SECRETS["BOOTSTRAP_STAFF_PASSWORD"])["candidate_token"]
    username = f"inst.{uuid.uuid4().hex[:8]}"
    password = f"Institution-{uuid.uuid4().hex[:12]}"
    made = call(platform, "POST", "/api/v1/institutions", staff,
                {"name": "某培训学校", "admin_username": username, "admin_password": password})
    assert made.status_code == 201, made.text
    institution = call(platform, "POST", "/api/v1/auth/institution-token", None,
                       {"username": username, "password": password}).json()["access_token"]
    tokens = {"anonymous": None, "candidate_a": a, "candidate_b": b, "institution": institution, "staff": staff}

    # A's things, named in the second table
    certificate_id = journey["certificate"]["certificate_id"]
    result_id = call(platform, "GET", "/api/v1/me/results", a).json()["results"][0]["result_id"]
    report = call(platform, "POST", "/api/v1/me/verification-reports", a,
                  {"certificate_number": journey["certificate"]["certificate_number"]})
    assert report.status_code == 201, report.text
    report_code = report.json()["report_code"]
    share = call(platform, "POST", f"/api/v1/me/verification-reports/{report_code}/share-codes", a, {})
    assert share.status_code == 201, share.text
    # an application of A's, withdrawn at once (so the journey's certificate stays free for other tests)
    applied = call(platform, "POST", f"/api/v1/me/certificates/{certificate_id}/replacement-applications", a,
                   {"kind": "reissue", "reason": "for the access matrix"})
    assert applied.status_code == 201, applied.text
    application_id = applied.json()["application_id"]
    withdrawn = call(platform, "POST", f"/api/v1/me/replacement-applications/{application_id}/withdrawal", a)
    assert withdrawn.status_code == 200, withdrawn.text
    values = {"application_id": application_id, "certificate_id": certificate_id, "result_id": result_id,
              "report_code": report_code,
              "share_id": share.json()["share_id"], "order_number": journey["order"]["order_number"],
              "candidate_id": call(platform, "GET", "/api/v1/me", a).json()["candidate_id"]}
    return tokens, values


def test_every_route_refuses_the_roles_it_does_not_serve(platform, people):
    tokens, values = people
    wrong = []
    checked = 0
    for route in ROUTES:
        if "public" in route.roles:
            continue
        for who, role in ROLES.items():
            if role in route.roles:
                continue
            response = call(platform, route.method, fill(route.path, values), tokens[who], {})
            expected = 401 if who == "anonymous" else 403
            checked += 1
            if response.status_code != expected:
                wrong.append(f"{route.method} {route.path} as {who}: {response.status_code} (expected {expected})")
    assert not wrong, "\n".join(wrong)
    assert checked > 250  # about a hundred routes, each refused to two or more roles


def test_every_route_naming_someones_things_is_in_the_ownership_table():
    named = {(r.method, r.path) for r in ROUTES
             if "public" not in r.roles and re.search(r"<(candidate_id|certificate_id|result_id|report_code|"
                                                       r"share_id|order_number|application_id)>", r.path)
             and ({"candidate", "institution"} & set(r.roles))}
    assert named == set(OWNED_BY_A), f"add to OWNED_BY_A: {sorted(named - set(OWNED_BY_A))}"


def test_nobody_reads_or_changes_candidate_as_things(platform, people):
    tokens, values = people
    a = tokens["candidate_a"]
    before = {"certificate": call(platform, "GET", f"/api/v1/me/certificates/{values['certificate_id']}", a).json(),
              "order": call(platform, "GET", f"/api/v1/payment-orders/{values['order_number']}", a).json(),
              "reports": call(platform, "GET", "/api/v1/me/verification-reports", a).json(),
              "shares": call(platform, "GET", "/api/v1/me/share-codes", a).json(),
              "reviews": call(platform, "GET", "/api/v1/me/score-reviews", a).json()}
    leaked = []
    for (method, path), body in OWNED_BY_A.items():
        route = next(r for r in ROUTES if (r.method, r.path) == (method, path))
        for who in INTRUDERS:
            if ROLES[who] not in route.roles:
                continue  # the role gate refuses it: the first test
            response = call(platform, method, fill(path, values), tokens[who], body)
            if response.status_code not in (403, 404):
                leaked.append(f"{method} {path} as {who}: {response.status_code} {response.text[:200]}")
    assert not leaked, "\n".join(leaked)
    after = {"certificate": call(platform, "GET", f"/api/v1/me/certificates/{values['certificate_id']}", a).json(),
             "order": call(platform, "GET", f"/api/v1/payment-orders/{values['order_number']}", a).json(),
             "reports": call(platform, "GET", "/api/v1/me/verification-reports", a).json(),
             "shares": call(platform, "GET", "/api/v1/me/share-codes", a).json(),
             "reviews": call(platform, "GET", "/api/v1/me/score-reviews", a).json()}
    assert after == before


def test_the_owner_and_staff_do_reach_them(platform, people):
    """The positive control: the same paths answer the owner (and staff, where staff may), so the refusals
    above are about ownership and not about a broken request."""
    tokens, values = people
    for path in ("/api/v1/me/certificates/<certificate_id>", "/api/v1/me/certificates/<certificate_id>/history",
                 "/api/v1/payment-orders/<order_number>"):
        assert call(platform, "GET", fill(path, values), tokens["candidate_a"]).status_code == 200, path
    assert call(platform, "GET", fill("/api/v1/candidates/<candidate_id>", values), tokens["staff"]).status_code \
        == 200
    assert call(platform, "GET", fill("/api/v1/payment-orders/<order_number>", values),
                tokens["staff"]).status_code == 200


@pytest.fixture(scope="module")
def one_role_staff(platform, people) -> dict[str, str]:
    """A signed-in staff account for each staff role holding only that role, and one holding none ("")."""
    tokens, _values = people
    signed_in = {}
    for role in (*STAFF_ROLES, ""):
        username, password = f"only.{role or 'none'}.{uuid.uuid4().hex[:6]}", f"Only-{uuid.uuid4().hex[:12]}"
        made = call(platform, "POST", "/api/v1/staff-accounts", tokens["staff"],
                    {"username": username, "display_name": username, "password": password,
                     "roles": [role] if role else []})
        assert made.status_code == 201, made.text
        token = call(platform, "POST", "/api/v1/auth/staff-token", None, {"username": username, "password": password})
        signed_in[role] = token.json()["access_token"]
    return signed_in


def test_every_staff_route_refuses_staff_without_its_role(platform, people, one_role_staff):
    _tokens, values = people
    wrong = []
    checked = 0
    for route in ROUTES:
        if "staff" not in route.roles or "public" in route.roles:
            continue
        for role, token in one_role_staff.items():
            if role in route.staff_roles:
                continue
            response = call(platform, route.method, fill(route.path, values), token, {})
            checked += 1
            code = response.json().get("error", {}).get("code") if response.content else None
            if (response.status_code, code) != (403, "role_required"):
                wrong.append(f"{route.method} {route.path} as staff with {role or 'no role'}: "
                             f"{response.status_code} {code}")
    assert not wrong, "\n".join(wrong)
    assert checked > 300  # about fifty staff routes, each refused to six or seven of the eight accounts


def test_each_single_role_account_does_reach_its_own_duty(platform, people, one_role_staff):
    """The positive control: the refusals above are about the role, not a broken account."""
    _tokens, values = people
    own = {"recorder": "/api/v1/results/<result_id>/history", "expert": "/api/v1/score-reviews",
           "publisher": "/api/v1/releases", "registrar": "/api/v1/production-batches", "finance": "/api/v1/refunds",
           "support": "/api/v1/candidates/<candidate_id>", "admin": "/api/v1/staff-accounts"}
    assert set(own) == set(STAFF_ROLES)
    for role, path in own.items():
        response = call(platform, "GET", fill(path, values), one_role_staff[role])
        assert response.status_code == 200, (role, path, response.text[:300])
