"""Separation of duties through the gateway, on SQLite and PostgreSQL (#19 item 4): staff accounts hold roles
(credence_common/contracts/staff_roles.py) that an admin assigns, and whatever their roles one person never takes two
parts in
one result's sign-off (services/scoring/domain/). A clerk who records a result is refused as its expert signer,
two other experts sign (and disagree), a signer is refused as the third decider and so is the clerk, a third expert
decides; staff without the publisher role cannot release, and the publisher role an admin assigns counts from the
account's next sign-in. Wrong requests get a 4xx with a code and a message, and change nothing."""

from __future__ import annotations

import random
import time
import uuid

from deploy.journey import random_mobile, random_resident_id, wait_until
from tests.e2e.conftest import SECRETS
from tests.e2e.test_institution_payment import Gateway

PROGRAM_CODE = "PSY-COUNSELLOR"
PASSWORD = "Quartz-heron 72 meadow"


def confirmed_candidate(gw: Gateway, rng: random.Random) -> dict:
    """A candidate registered under their real name who confirmed their identity online: a ticket number."""
    mobile = random_mobile(rng)
    code = gw.texted_code(mobile, "registration")
    email, password = f"sod.{uuid.uuid4().hex[:10]}@example.com", f"Candidate-{uuid.uuid4().hex[:12]}"
    gw.post("/api/v1/candidates", expect=201, json={
        "full_name": "周文清", "resident_id_number": random_resident_id(rng), "mobile": mobile, "mobile_code": code,
        "email": email, "password": password, "exam_region": "11"})
    token = gw.post("/api/v1/auth/login", json={"login": email, "password": password})["access_token"]
    confirmed = gw.post("/api/v1/me/identity-confirmation", token, json={
        "method": "online", "id_card_image_ref": f"upload/{uuid.uuid4().hex}.jpg",
        "liveness_ref": f"liveness/{uuid.uuid4().hex}.mp4"})
    return {"token": token, "ticket_number": confirmed["ticket_number"]}


def sign_in(gw: Gateway, username: str) -> dict:
    return gw.post("/api/v1/auth/staff-token", json={"username": username, "password": PASSWORD})


def test_separation_of_duties_through_the_gateway(platform):
    gw = Gateway(platform)
    admin = gw.post("/api/v1/auth/staff-token", json={
        "username": "admin", "password": SECRETS["BOOTSTRAP_STAFF_PASSWORD"]})["access_token"]
    suffix = uuid.uuid4().hex[:6]
    names = {who: f"{who}.{suffix}" for who in ("clerk", "expert1", "expert2", "expert3", "desk", "publisher")}
    roles = {"clerk": ["recorder", "expert"],  # records, and is an expert too: never for what they recorded
             "expert1": ["expert"], "expert2": ["expert"], "expert3": ["expert"],
             "desk": ["support"], "publisher": []}  # the publisher gets their role later
    for who, username in names.items():
        created = gw.post("/api/v1/staff-accounts", admin, expect=201, json={
            "username": username, "display_name": who.title(), "password": PASSWORD, "roles": roles[who]})
        assert created["roles"] == roles[who]
    tokens = {who: sign_in(gw, username)["access_token"] for who, username in names.items()}
    clerk, expert1, expert2, expert3 = (tokens[who] for who in ("clerk", "expert1", "expert2", "expert3"))

    # the clerk records a composite result
    candidate = confirmed_candidate(gw, random.Random())
    sitting = time.strftime("%Y-%m")
    line = {"ticket_number": candidate["ticket_number"], "program_code": PROGRAM_CODE, "sitting": sitting,
            "final_score": 71}

    def recorded():  # scoring learns the ticket number from identity's event
        response = gw.call("POST", "/api/v1/exam-results", clerk, None, json={"results": [line]})
        if response.status_code == 422 and response.json()["error"]["code"] == "unknown_ticket_number":
            return None
        assert response.status_code == 200, response.text
        return response.json()

    wait_until("scoring knows the ticket number", recorded)
    # an expert without the recorder role cannot record
    assert gw.refused("POST", "/api/v1/exam-results", expert1, 403, json={"results": [line]}) == "role_required"

    def queue_item(token: str = expert1) -> dict:
        items = gw.get(f"/api/v1/evaluations?program_code={PROGRAM_CODE}&sitting={sitting}", token)["items"]
        return next(item for item in items if item["ticket_number"] == candidate["ticket_number"])

    item = queue_item()
    result_id = item["result_id"]
    evaluations, decision = f"/api/v1/results/{result_id}/evaluations", f"/api/v1/results/{result_id}/decision"
    history = f"/api/v1/results/{result_id}/history"

    # the clerk, an expert, is refused as a signer of what they recorded; the desk has no expert role at all
    refusal = gw.call("POST", evaluations, clerk, None, json={"decision": "passed"})
    assert refusal.status_code == 403
    error = refusal.json()["error"]
    assert error["code"] == "same_person_cannot_sign" and "two other experts" in error["message"]
    assert error["details"] == [{"field": "duty", "message": "recorded"}]
    assert gw.refused("POST", evaluations, tokens["desk"], 403, json={"decision": "passed"}) == "role_required"
    assert gw.refused("POST", evaluations, expert1, 422, json={"decision": "maybe"}) == "invalid_input"
    assert (queue_item()["state"], queue_item()["reviewers"]) == ("pending", [])  # nothing changed

    # two other experts sign, and disagree: the result waits for a third
    assert gw.post(evaluations, expert1, json={"decision": "passed"})["state"] == "pending"
    assert gw.refused("POST", evaluations, expert1, 409, json={"decision": "passed"}) == "already_signed"
    assert gw.post(evaluations, expert2, json={"decision": "failed"})["state"] == "held"
    signers = sorted(f"staff:{names[who]}" for who in ("expert1", "expert2"))
    assert queue_item()["reviewers"] == signers

    # a signer is not the third decider, nor is the clerk who recorded it
    settle = {"decision": "passed", "reason": "drill video reviewed by the panel"}
    for signer in (expert1, expert2):
        refusal = gw.call("POST", decision, signer, None, json=settle)
        assert refusal.status_code == 403, refusal.text
        assert refusal.json()["error"]["code"] == "same_person_cannot_sign"
        assert refusal.json()["error"]["details"] == [{"field": "duty", "message": "signed"}]
    refusal = gw.call("POST", decision, clerk, None, json=settle)
    assert (refusal.status_code, refusal.json()["error"]["details"]) == (403, [{"field": "duty",
                                                                               "message": "recorded"}])
    assert queue_item()["state"] == "held"
    assert [h["action"] for h in gw.get(history, clerk)["history"]] == ["recorded", "evaluated", "evaluated"]
    assert gw.post(decision, expert3, json=settle) == {"result_id": result_id, "state": "decided",
                                                       "evaluated_outcome": "passed"}

    # staff without the publisher role cannot release; the result stays sealed
    release = {"program_code": PROGRAM_CODE, "sitting": sitting}
    for who in ("clerk", "expert3", "desk", "publisher"):
        assert gw.refused("POST", "/api/v1/exam-results/publication", tokens[who], 403,
                          json=release) == "role_required", who
    assert gw.get("/api/v1/me/results", candidate["token"])["results"][0]["status"] == "evaluating"

    # only an admin assigns roles; wrong requests change nothing
    publisher = names["publisher"]
    assign = {"roles": ["publisher"], "reason": "release officer for this sitting"}
    path = f"/api/v1/staff-accounts/{publisher}/roles"
    assert gw.refused("PUT", path, tokens["desk"], 403, json=assign) == "role_required"
    assert gw.refused("PUT", path, admin, 422, json={"roles": ["boss"], "reason": "typo"}) == "invalid_input"
    assert gw.refused("PUT", path, admin, 422, json={"roles": ["publisher"]}) == "invalid_input"  # no reason
    assert gw.refused("PUT", f"/api/v1/staff-accounts/nobody.{suffix}/roles", admin, 404,
                      json=assign) == "staff_account_not_found"
    assert gw.refused("PUT", "/api/v1/staff-accounts/admin/roles", admin, 403,
                      json={"roles": ["admin"], "reason": "narrow myself"}) == "own_roles"
    listed = {a["username"]: a["roles"] for a in gw.get("/api/v1/staff-accounts", admin)["accounts"]}
    assert listed[publisher] == [] and listed["admin"] == ["recorder", "expert", "publisher", "registrar",
                                                           "finance", "support", "admin"]

    # the admin assigns the publisher role: the token issued before still lacks it, the next sign-in has it
    assert gw.call("PUT", path, admin, json=assign).json()["roles"] == ["publisher"]
    assert gw.refused("POST", "/api/v1/exam-results/publication", tokens["publisher"], 403,
                      json=release) == "role_required"
    fresh = sign_in(gw, publisher)["access_token"]
    published = gw.post("/api/v1/exam-results/publication", fresh, json=release)
    assert published["published"] >= 1 and published["awaiting_evaluation"] == 0
    mine = gw.get("/api/v1/me/results", candidate["token"])["results"][0]
    assert (mine["status"], mine["final_score"]) == ("passed", 71)
    assert [(h["action"], h["actor"].removeprefix("staff:")) for h in gw.get(history, fresh)["history"]] == [
        ("recorded", names["clerk"]), ("evaluated", names["expert1"]), ("evaluated", names["expert2"]),
        ("decided", names["expert3"]), ("published", publisher)]

    # a refresh brings the account's roles as they are now; every change is on record
    changes = gw.get(f"/api/v1/staff-accounts/{publisher}/role-changes", admin)["changes"]
    assert [(c["changed_by"], c["roles_before"], c["roles_after"], c["reason"]) for c in changes] == [
        ("staff:admin", [], [], "account created"),
        ("staff:admin", [], ["publisher"], "release officer for this sitting")]
    clerk_session = sign_in(gw, names["clerk"])
    gw.call("PUT", f"/api/v1/staff-accounts/{names['clerk']}/roles", admin,
            json={"roles": ["recorder"], "reason": "records only from now on"})
    refreshed = gw.post("/api/v1/auth/refresh", json={"refresh_token": clerk_session["refresh_token"]})
    assert gw.refused("GET", f"/api/v1/evaluations?program_code={PROGRAM_CODE}&sitting={sitting}",
                      refreshed["access_token"], 403) == "role_required"
    assert gw.get(history, refreshed["access_token"])["result_id"] == result_id  # a recorder still reads it
