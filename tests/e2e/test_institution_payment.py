"""Institution payment (代缴) through the gateway, as staff, a training institution and its students, on SQLite and
PostgreSQL (#19 item 1): the institution registers and confirms its students, they pass and confirm their
certificates, the institution sees their fees among its dues, pays several in one order with one invoice, each
certificate issues, and staff refund one student's fee out of that order. Wrong requests get a 4xx with a code and
change nothing."""

from __future__ import annotations

import random
import re
import time
import uuid

import requests

from deploy.journey import random_mobile, random_resident_id, wait_until
from tests.e2e.conftest import SECRETS

PROGRAM_CODE = "PSY-COUNSELLOR"
TAX_NUMBER = "91110000600037341L"  # a valid unified social credit code (统一社会信用代码)
NAMES = ("赵一鸣", "钱二丽", "孙三立")


class Gateway:
    def __init__(self, platform):
        self.base = platform.gateway_url

    def call(self, method: str, path: str, token: str | None = None, expect: int | None = 200, **kwargs):
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = requests.request(method, self.base + path, headers=headers, timeout=15, **kwargs)
        if expect is not None:
            assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text[:400]}"
        return response

    def get(self, path, token=None, expect=200):
        return self.call("GET", path, token, expect).json()

    def post(self, path, token=None, expect=200, **kwargs):
        response = self.call("POST", path, token, expect, **kwargs)
        return response.json() if response.content else None

    def refused(self, method: str, path: str, token: str | None, status: int, **kwargs) -> str:
        """The machine-readable code of a refusal with this status."""
        response = self.call(method, path, token, None, **kwargs)
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text[:400]}"
        body = response.json()
        assert set(body) == {"error"} and body["error"]["message"], body
        return body["error"]["code"]

    def texted_code(self, mobile: str, purpose: str) -> str:
        self.post("/api/v1/mobile-codes", expect=202, json={"mobile": mobile, "purpose": purpose})
        messages = self.post("/api/v1/dev/sms-messages", json={"mobile": mobile})["messages"]
        return re.search(r"\b(\d{6})\b", messages[0]).group(1)  # the newest text


def sign_in_institution(gw: Gateway, staff: str, name: str) -> tuple[dict, dict]:
    username, password = f"inst.{uuid.uuid4().hex[:8]}", f"Institution-{uuid.uuid4().hex[:12]}"
    made = gw.post("/api/v1/institutions", staff, expect=201,
                   json={"name": name, "admin_username": username, "admin_password": password})
    tokens = gw.post("/api/v1/auth/institution-token", json={"username": username, "password": password})
    return made, tokens


def enrol_student(gw: Gateway, school: str, rng: random.Random, full_name: str) -> dict:
    """The institution registers the student with the code texted to the student and confirms them on site; the
    student sets their own password with a reset code and signs in."""
    mobile, email = random_mobile(rng), f"student.{uuid.uuid4().hex[:10]}@example.com"
    student = gw.post("/api/v1/institution/students", school, expect=201, json={
        "full_name": full_name, "resident_id_number": random_resident_id(rng), "mobile": mobile,
        "mobile_code": gw.texted_code(mobile, "registration"), "email": email, "exam_region": "11"})
    confirmed = gw.post(f"/api/v1/candidates/{student['candidate_id']}/identity-confirmation", school,
                        json={"decision": "approve"})
    assert confirmed["status"] == "confirmed" and confirmed["ticket_number"]
    password = f"Student-{uuid.uuid4().hex[:12]}"
    gw.post("/api/v1/password-resets/by-code", json={
        "mobile": mobile, "code": gw.texted_code(mobile, "password_reset"), "new_password": password})
    token = gw.post("/api/v1/auth/login", json={"login": email, "password": password})["access_token"]
    return {"candidate_id": student["candidate_id"], "ticket_number": confirmed["ticket_number"], "token": token,
            "full_name": full_name}


def pass_the_exam(gw: Gateway, staff: str, students: list[dict]) -> None:
    """Staff record passing scores, two experts sign them off, staff release the sitting."""
    sitting = time.strftime("%Y-%m")
    lines = [{"ticket_number": s["ticket_number"], "program_code": PROGRAM_CODE, "sitting": sitting,
              "final_score": 85} for s in students]

    def recorded():  # scoring learns the ticket numbers from identity's events
        response = gw.call("POST", "/api/v1/exam-results", staff, None, json={"results": lines})
        if response.status_code == 422 and response.json()["error"]["code"] == "unknown_ticket_number":
            return None
        assert response.status_code == 200, response.text
        return response.json()

    wait_until("scoring knows the students' ticket numbers", recorded)
    expert, expert_password = f"expert.{uuid.uuid4().hex[:6]}", f"Expert-{uuid.uuid4().hex[:12]}"
    gw.post("/api/v1/staff-accounts", staff, expect=201,
            json={"username": expert, "display_name": "Second expert", "password": expert_password})
    second_expert = gw.post("/api/v1/auth/staff-token",
                            json={"username": expert, "password": expert_password})["access_token"]
    queue = gw.get(f"/api/v1/evaluations?program_code={PROGRAM_CODE}&sitting={sitting}", staff)["items"]
    tickets = {s["ticket_number"] for s in students}
    items = [item for item in queue if item["ticket_number"] in tickets]
    assert len(items) == len(students)
    for item in items:
        for signer in (staff, second_expert):
            gw.post(f"/api/v1/results/{item['result_id']}/evaluations", signer,
                    json={"decision": item["suggested_outcome"]})
    published = gw.post("/api/v1/exam-results/publication", staff,
                        json={"program_code": PROGRAM_CODE, "sitting": sitting})
    assert published["passed"] >= len(students)


def confirm_certificate(gw: Gateway, student: dict) -> dict:
    """The student confirms what will be printed; the fee falls due to the institution (待机构代缴)."""
    application = wait_until(f"{student['full_name']}'s certificate application exists", lambda: (gw.get(
        "/api/v1/me/certificates", student["token"])["certificates"] or [None])[0])
    confirmed = gw.post(f"/api/v1/me/certificates/{application['certificate_id']}/confirmation", student["token"],
                        json={"photo_reference": f"photos/{uuid.uuid4().hex}.jpg",
                              "delivery_address": "北京市海淀区学院路1号 100083"})
    assert confirmed["status"] == "awaiting_institution_payment", confirmed
    return confirmed


def test_an_institution_pays_its_students_fees_in_one_order_and_one_fee_is_refunded(platform):
    gw = Gateway(platform)
    rng = random.Random()
    staff = gw.post("/api/v1/auth/staff-token", json={
        "username": "admin", "password": SECRETS["BOOTSTRAP_STAFF_PASSWORD"]})["access_token"]
    school, school_tokens = sign_in_institution(gw, staff, f"阳光职业培训学校{uuid.uuid4().hex[:4]}")
    other_school = sign_in_institution(gw, staff, f"月亮培训中心{uuid.uuid4().hex[:4]}")[1]["access_token"]
    inst = school_tokens["access_token"]

    students = [enrol_student(gw, inst, rng, name) for name in NAMES]
    pass_the_exam(gw, staff, students)
    certificates = {s["candidate_id"]: confirm_certificate(gw, s)["certificate_id"] for s in students}

    # the institution sees its students' fees (keyed by its institution, not by the signed-in account)
    dues = wait_until("the institution sees its three students' fees", lambda: (
        lambda found: found if len(found) == len(students) else None)(
        gw.get("/api/v1/institution/payment-dues", inst)["dues"]))
    assert {d["candidate_id"] for d in dues} == set(certificates)
    assert {d["reference_id"] for d in dues} == set(certificates.values())
    assert {(d["payer_kind"], d["purpose"], d["amount_fen"], d["status"]) for d in dues} == {
        ("institution", "certificate_fee", 6000, "open")}
    # a refreshed sign-in still names the institution
    refreshed = gw.post("/api/v1/auth/refresh", json={"refresh_token": school_tokens["refresh_token"]})
    assert len(gw.get("/api/v1/institution/payment-dues", refreshed["access_token"])["dues"]) == len(students)
    # the students owe nothing themselves; another institution sees none of it
    for student in students:
        assert gw.get("/api/v1/me/payment-dues", student["token"])["dues"] == []
    assert gw.get("/api/v1/institution/payment-dues", other_school)["dues"] == []

    due_ids = [d["due_id"] for d in dues]
    invoice = {"title": school["name"], "tax_number": TAX_NUMBER}
    # wrong requests: a 4xx with a code, and nothing changes
    student = students[0]
    own_due = next(d["due_id"] for d in dues if d["candidate_id"] == student["candidate_id"])
    assert gw.refused("POST", "/api/v1/payment-orders", student["token"], 403,
                      json={"due_ids": [own_due]}) == "not_your_due"
    assert gw.refused("POST", "/api/v1/payment-orders", other_school, 403,
                      json={"due_ids": due_ids}) == "not_your_candidate"
    assert gw.refused("POST", "/api/v1/payment-orders", inst, 404,
                      json={"due_ids": [*due_ids, str(uuid.uuid4())]}) == "due_not_found"
    wrong_tax_number = {"title": school["name"], "tax_number": "91110000600037341X"}  # its check character is wrong
    assert gw.refused("POST", "/api/v1/payment-orders", inst, 422,
                      json={"due_ids": due_ids, "invoice": wrong_tax_number}) == "invalid_input"
    assert gw.refused("POST", "/api/v1/payment-orders", inst, 422,
                      json={"due_ids": [due_ids[0], due_ids[0]]}) == "invalid_input"
    assert gw.refused("POST", "/api/v1/payment-orders", inst, 422, json={"due_ids": []}) == "invalid_input"
    assert gw.get("/api/v1/institution/payment-orders", inst)["orders"] == []
    assert all(d["open_order_number"] is None for d in gw.get("/api/v1/institution/payment-dues", inst)["dues"])

    # one order for all three students, with one invoice; a retry with the same key is the same order
    key = {"Idempotency-Key": uuid.uuid4().hex}
    order = gw.post("/api/v1/payment-orders", inst, expect=201, headers=dict(key),
                    json={"due_ids": due_ids, "invoice": invoice})
    assert (order["payer_kind"], order["amount_fen"], order["status"]) == ("institution", 18000, "created")
    assert sorted(i["due_id"] for i in order["items"]) == sorted(due_ids)
    again = gw.post("/api/v1/payment-orders", inst, expect=201, headers=dict(key),
                    json={"due_ids": due_ids, "invoice": invoice})
    assert again["order_number"] == order["order_number"]
    paid = gw.post(f"/api/v1/sandbox-provider/orders/{order['order_number']}/payment", inst, json={})
    assert paid["acknowledgement"]["status"] == "paid"

    # each certificate issues
    for each in students:
        issued = wait_until(f"{each['full_name']}'s certificate is issued", lambda each=each: next(
            (c for c in gw.get("/api/v1/me/certificates", each["token"])["certificates"]
             if c["status"] == "issued"), None))
        assert issued["certificate_id"] == certificates[each["candidate_id"]] and issued["certificate_number"]

    # one invoice record for the whole order
    orders = gw.get("/api/v1/institution/payment-orders", inst)["orders"]
    assert [(o["order_number"], o["status"]) for o in orders] == [(order["order_number"], "paid")]
    record = gw.get(f"/api/v1/payment-orders/{order['order_number']}", inst)["invoice"]
    assert record["invoice_number"] and record["issued_at"]
    assert (record["title"], record["tax_number"], record["amount_fen"], record["refunded_fen"]) == (
        school["name"], TAX_NUMBER, 18000, 0)
    assert gw.refused("GET", f"/api/v1/payment-orders/{order['order_number']}", other_school, 404) \
        == "order_not_found"

    # staff refund one student's fee out of the batch: wrong requests first, refused and recorded as nothing
    refund = {"order_number": order["order_number"], "reason": "student withdrew", "request_key": uuid.uuid4().hex}
    assert gw.refused("POST", "/api/v1/refunds", staff, 422,
                      json={**refund, "due_id": str(uuid.uuid4()), "amount_fen": 6000}) == "due_not_in_order"
    assert gw.refused("POST", "/api/v1/refunds", staff, 422,
                      json={**refund, "due_id": own_due, "amount_fen": 6001}) == "refund_exceeds_due"
    assert gw.refused("POST", "/api/v1/refunds", inst, 403, json={**refund, "due_id": own_due,
                                                                   "amount_fen": 6000}) == "forbidden"
    assert gw.get(f"/api/v1/refunds?order_number={order['order_number']}", staff)["refunds"] == []
    done = gw.post("/api/v1/refunds", staff, expect=201, json={**refund, "due_id": own_due, "amount_fen": 6000})
    assert (done["due_id"], done["reference_id"]) == (own_due, certificates[student["candidate_id"]])
    wait_until("the refund is confirmed by the provider", lambda: gw.get(
        f"/api/v1/refunds?order_number={order['order_number']}", staff)["refunds"][0]["status"] == "succeeded")
    assert gw.refused("POST", "/api/v1/refunds", staff, 422, json={
        **refund, "request_key": uuid.uuid4().hex, "due_id": own_due, "amount_fen": 1}) == "refund_exceeds_due"
    after = gw.get(f"/api/v1/payment-orders/{order['order_number']}", inst)
    assert (after["status"], after["refunded_fen"], after["invoice"]["refunded_fen"]) == (
        "partially_refunded", 6000, 6000)
    refunded = {d["candidate_id"]: d["refunded_fen"] for d in gw.get("/api/v1/institution/payment-dues", inst)["dues"]}
    assert refunded == {s["candidate_id"]: (6000 if s is student else 0) for s in students}
    assert len(gw.get(f"/api/v1/refunds?order_number={order['order_number']}", staff)["refunds"]) == 1

    # issue #19 item 2: the student's whole fee went back, so their certificate is revoked (reason fee_refunded);
    # the other students' certificates stay valid
    numbers = {}
    for each in students:
        mine = gw.get(f"/api/v1/me/certificates/{certificates[each['candidate_id']]}", each["token"])
        numbers[each["candidate_id"]] = mine["certificate_number"]
    revoked = wait_until("the refunded student's certificate is revoked", lambda: (lambda c: c if c["status"] ==
                         "revoked" else None)(gw.get(f"/api/v1/me/certificates/{certificates[student['candidate_id']]}",
                                                     student["token"])))
    assert revoked["revocation_code"] == "fee_refunded"
    for each in students:
        answer = gw.post("/api/v1/certificate-checks", json={
            "holder_name": each["full_name"], "certificate_number": numbers[each["candidate_id"]]})
        assert answer["result"] == ("revoked" if each is student else "valid"), each["full_name"]
