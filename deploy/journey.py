"""One candidate's whole journey through the gateway: the script behind ``make demo`` and the
end-to-end test. Each step is printed; every wait for an event-driven step is bounded."""

from __future__ import annotations

import os
import random
import re
import threading
import time
import uuid
from collections.abc import Callable

import requests
from stdnum.cn import ric

from credence_common.security.masking import mask_mobile, mask_resident_id

DEV_STAFF_PASSWORD = "dev-insecure-staff-password"
PROGRAM_CODE = "PSY-COUNSELLOR"
EXPERT_PASSWORD = "Expert-panel 2026 review"  # development only
# the expert panel: two staff accounts holding only the expert role (the admin who records the score may not sign it
# off, credence_common/contracts/staff_roles.py and services/scoring/domain/__init__.py)
EXPERTS = ("expert1", "expert2")


class JourneyFailed(AssertionError):
    pass


# What this process has drawn: one platform run's journeys all come from one process (the soak, the fault suite,
# the benchmarks), and the resident ID space below holds about 12 million numbers, so that among 3,600 journeys
# (an hour's soak) two would share one with even odds; the second then fails "already_registered" (the soak of
# 2026-12-07 15:04 UTC, one journey in 3,603). A number or mobile drawn again is drawn afresh.
_DRAWN: set[str] = set()
_DRAWN_LOCK = threading.Lock()


def _unique(draw: Callable[[], str]) -> str:
    with _DRAWN_LOCK:
        value = draw()
        while value in _DRAWN:
            value = draw()
        _DRAWN.add(value)
        return value


def random_resident_id(rng: random.Random) -> str:
    """A valid resident ID number (GB 11643 check digit) that no other call in this process returned."""

    def draw() -> str:
        body = (f"110105{rng.randint(1970, 2004)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
                f"{rng.randint(0, 999):03d}")
        return body + ric.calc_check_digit(body + "0")  # stdnum expects a placeholder check digit

    return _unique(draw)


MOBILE_PREFIXES = ("130", "131", "135", "136", "137", "138", "139", "150", "151", "158", "159", "177", "186",
                   "187", "188", "189", "199")  # ranges that carriers have assigned


def random_mobile(rng: random.Random) -> str:
    """A mobile number in an assigned range that no other call in this process returned."""
    return _unique(lambda: f"{rng.choice(MOBILE_PREFIXES)}{rng.randint(0, 10**8 - 1):08d}")


TRANSIENT_CONFLICTS = {"concurrent_change", "idempotent_request_pending"}


class _SourceAddressAdapter(requests.adapters.HTTPAdapter):
    def __init__(self, source_address: str):
        self.source_address = (source_address, 0)
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = self.source_address
        super().init_poolmanager(*args, **kwargs)


class Client:
    """``patience`` > 0 (the fault suite): keep retrying what a fault explains (no connection, 5xx, 429, a
    concurrent change, an answer not known yet) for that many seconds, resending an unsafe request with the
    same ``Idempotency-Key`` so that it takes effect once."""

    def __init__(self, base_url: str, timeout: float = 15.0, patience: float = 0.0,
                 source_address: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        if source_address:  # call from this local address (loopback has all of 127.0.0.0/8)
            self.session.mount("http://", _SourceAddressAdapter(source_address))
        self.timeout = timeout
        self.patience = patience

    def request(self, method: str, path: str, token: str | None = None, expect: int | tuple = 200, **kwargs):
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if self.patience and method != "GET":
            headers.setdefault("Idempotency-Key", uuid.uuid4().hex)  # the same for every try of this request
        expected = (expect,) if isinstance(expect, int) else expect
        deadline = time.monotonic() + self.patience
        while True:
            try:
                response = self.session.request(method, self.base_url + path, headers=headers,
                                                timeout=self.timeout, **kwargs)
            except requests.RequestException as exc:
                if time.monotonic() < deadline:
                    time.sleep(0.5)
                    continue
                raise JourneyFailed(f"{method} {path}: {type(exc).__name__}: {exc}") from None
            if response.status_code in expected or not self._transient(response) \
                    or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        if response.status_code not in expected:
            raise JourneyFailed(f"{method} {path}: expected {expected}, got {response.status_code}: "
                                f"{response.text[:500]}")
        return response.json() if response.content else None

    def _transient(self, response) -> bool:
        if not self.patience:
            return False
        if response.status_code >= 500 or response.status_code == 429:
            return True
        if response.status_code == 409:
            try:
                return response.json()["error"]["code"] in TRANSIENT_CONFLICTS
            except (ValueError, KeyError, TypeError):
                return False
        return False


def read_dev_code(client: Client, mobile: str) -> str:
    """The newest code the development SMS adapter kept for this number."""
    messages = client.request("POST", "/api/v1/dev/sms-messages", json={"mobile": mobile})["messages"]
    match = re.search(r"\b(\d{6})\b", messages[0]) if messages else None
    if not match:
        raise JourneyFailed("no code was texted (is SMS_ADAPTER=dev?)")
    return match.group(1)


def wait_until(description: str, probe: Callable[[], object], timeout: float = 30.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise JourneyFailed(f"timed out after {timeout:.0f}s waiting until {description}")
        time.sleep(interval)


def run_journey(base_url: str, say: Callable[[str], None] = print, staff_password: str | None = None,
                seed: int | None = None, patience: float = 0.0, source_address: str | None = None,
                mark: Callable[[str], None] = lambda _step: None) -> dict:
    """``patience`` and ``source_address``: see ``Client``; event-driven waits last at least ``patience``.
    ``mark(step)`` is called as each step begins (a step ends where the next begins; the last, on return): the
    benchmark times the steps with it."""
    staff_password = staff_password or os.environ.get("BOOTSTRAP_STAFF_PASSWORD", DEV_STAFF_PASSWORD)
    rng = random.Random(seed)
    client = Client(base_url, patience=patience, source_address=source_address)
    waiting = max(30.0, patience)
    resident_id = random_resident_id(rng)
    full_name = rng.choice(["王小明", "李静", "张伟", "刘洋", "陈晨", "杨帆"])
    mobile = random_mobile(rng)
    email = f"candidate.{uuid.uuid4().hex[:10]}@example.com"
    password = f"Journey-{uuid.uuid4().hex[:12]}"

    say(f"1. {full_name} asks for a registration code on {mask_mobile(mobile)}")
    mark("registration code texted")
    client.request("POST", "/api/v1/mobile-codes", expect=202, json={"mobile": mobile, "purpose": "registration"})
    code = read_dev_code(client, mobile)
    say(f"   -> the (development) SMS adapter delivered code {code}")
    say(f"   Register {full_name} (ID {mask_resident_id(resident_id)}) with that code")
    mark("register")
    candidate = client.request("POST", "/api/v1/candidates", expect=201, json={
        "full_name": full_name, "resident_id_number": resident_id, "mobile": mobile, "mobile_code": code,
        "email": email, "password": password, "exam_region": "11"})
    say(f"   -> candidate {candidate['candidate_id']} is {candidate['status']}")

    mark("sign in")
    tokens = client.request("POST", "/api/v1/auth/login", json={"login": email, "password": password})
    token = tokens["access_token"]
    say("2. Signed in by email; confirm identity online (ID card image + liveness, sandbox verifier)")
    mark("confirm identity online")
    confirmed = client.request("POST", "/api/v1/me/identity-confirmation", token=token, json={
        "method": "online", "id_card_image_ref": f"upload/{uuid.uuid4().hex}.jpg",
        "liveness_ref": f"liveness/{uuid.uuid4().hex}.mp4"})
    ticket_number = confirmed["ticket_number"]
    say(f"   -> {confirmed['status']}: admission ticket number {ticket_number}")

    mark("staff sign in")
    staff_token = client.request("POST", "/api/v1/auth/staff-token",
                                 json={"username": "admin", "password": staff_password})["access_token"]
    sitting = time.strftime("%Y-%m")
    say(f"3. Staff record a final score of 82 in {PROGRAM_CODE} for sitting {sitting}")

    def record():
        try:
            response = client.session.post(
                base_url + "/api/v1/exam-results", timeout=15, headers={"Authorization": f"Bearer {staff_token}"},
                json={"results": [{"ticket_number": ticket_number, "program_code": PROGRAM_CODE, "sitting": sitting,
                                   "final_score": 82}]})
        except requests.RequestException:
            if client.patience:
                return None  # a fault: ask again
            raise
        if response.status_code == 422 and response.json()["error"]["code"] == "unknown_ticket_number":
            return None  # scoring has not yet received the confirmation event
        if client._transient(response):
            return None
        if response.status_code != 200:
            raise JourneyFailed(f"recording results failed: {response.status_code} {response.text[:300]}")
        return response.json()

    mark("record the score (once scoring has the ticket)")
    wait_until("scoring knows the ticket number", record, timeout=waiting)
    results = client.request("GET", "/api/v1/me/results", token=token)["results"]
    say(f"   -> before release the candidate sees: {results[0]['status']}")

    say("   Two experts, neither of them the one who recorded it, sign the result off (the expert-panel rule for "
        "composite programs)")
    mark("two experts sign off")
    experts = []
    for number, username in enumerate(EXPERTS, 1):
        client.request("POST", "/api/v1/staff-accounts", token=staff_token, expect=(201, 409), json={
            "username": username, "display_name": f"Expert {number}", "password": EXPERT_PASSWORD,
            "roles": ["expert"]})
        experts.append(client.request("POST", "/api/v1/auth/staff-token", json={
            "username": username, "password": EXPERT_PASSWORD})["access_token"])
    queue = client.request("GET", f"/api/v1/evaluations?program_code={PROGRAM_CODE}&sitting={sitting}",
                           token=experts[0])["items"]
    item = next(i for i in queue if i["ticket_number"] == ticket_number)
    for expert in experts:
        signed = client.request("POST", f"/api/v1/results/{item['result_id']}/evaluations", token=expert,
                                json={"decision": item["suggested_outcome"]})
    say(f"   -> {signed['state']}: {signed['evaluated_outcome']}")

    mark("release the sitting")
    published = client.request("POST", "/api/v1/exam-results/publication", token=staff_token,
                               json={"program_code": PROGRAM_CODE, "sitting": sitting})
    say(f"4. Staff publish the sitting: {published['published']} published, {published['passed']} passed")
    results = client.request("GET", "/api/v1/me/results", token=token)["results"]
    say(f"   -> the candidate sees: {results[0]['status']} with {results[0]['final_score']}")

    say("5. Certificates reacts to the qualification: a certificate awaiting payment")
    mark("certificate application appears (event)")
    certificate = wait_until("a certificate exists", lambda: (client.request(
        "GET", "/api/v1/me/certificates", token=token)["certificates"] or [None])[0], timeout=waiting)
    say(f"   -> application {certificate['certificate_id']} is {certificate['status']}: "
        f"{certificate['holder_name']}, {certificate['program_name']}, qualified {certificate['qualified_on']}")
    mark("candidate confirms the certificate")
    certificate = client.request("POST", f"/api/v1/me/certificates/{certificate['certificate_id']}/confirmation",
                                 token=token, json={"photo_reference": f"photos/{uuid.uuid4().hex}.jpg",
                                                   "delivery_address": "北京市海淀区学院路1号 100083"})
    say(f"   The candidate confirms what will be printed -> {certificate['status']}")

    mark("fee due appears (event)")
    due = wait_until("payments has the fee due", lambda: (client.request(
        "GET", "/api/v1/me/payment-dues", token=token)["dues"] or [None])[0], timeout=waiting)
    say(f"6. Payments holds a due of {due['amount_fen']} fen for {due['purpose']}; the candidate opens an order")
    order_request = {"due_ids": [due["due_id"]], "invoice": {"title": full_name}}
    idempotency_key = uuid.uuid4().hex
    mark("open the order (and its keyed repeat)")
    order = client.request("POST", "/api/v1/payment-orders", token=token, expect=201, json=order_request,
                           headers={"Idempotency-Key": idempotency_key})
    again = client.request("POST", "/api/v1/payment-orders", token=token, expect=201, json=order_request,
                           headers={"Idempotency-Key": idempotency_key})
    if again["order_number"] != order["order_number"]:
        raise JourneyFailed("a repeated order request opened a second order")
    say(f"   -> order {order['order_number']} for {order['amount_fen']} fen, pay at {order['pay_url']}")

    mark("pay (sandbox notification)")
    paid = client.request("POST", f"/api/v1/sandbox-provider/orders/{order['order_number']}/payment", token=token,
                          json={})
    say(f"7. The candidate pays at the sandbox provider; its signed notification arrives: order "
        f"{paid['acknowledgement']['status']}")

    mark("certificate issued (event)")
    issued = wait_until("the certificate is issued", lambda: next(
        (c for c in client.request("GET", "/api/v1/me/certificates", token=token)["certificates"]
         if c["status"] == "issued"), None), timeout=waiting)
    say(f"8. Certificate issued: number {issued['certificate_number']}")

    def check():
        try:
            response = client.session.post(base_url + "/api/v1/certificate-checks", timeout=15, json={
                "holder_name": full_name, "certificate_number": issued["certificate_number"]})
        except requests.RequestException:
            if client.patience:
                return None
            raise
        return response.json() if response.status_code == 200 else None

    mark("public check finds it (event)")
    verdict = wait_until("verification has the certificate", check, timeout=waiting)
    details = verdict["certificate"]
    say(f"9. Public check by name + number: {verdict['result']} — {details['holder_name_masked']}, "
        f"{details['resident_id_number_masked']}, {details['program_name']}, issued {details['issued_on']}")
    return {"full_name": full_name, "resident_id_number": resident_id, "ticket_number": ticket_number,
            "mobile": mobile, "email": email, "password": password, "refresh_token": tokens["refresh_token"],
            "certificate": issued, "order": order, "payment": paid, "verdict": verdict, "candidate_token": token,
            "staff_token": staff_token, "expert_tokens": experts}
