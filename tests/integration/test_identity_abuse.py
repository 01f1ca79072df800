"""Identity under attack: guessing, enumeration, bursts and sending texts, on a real database and broker."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import eventlet
import pytest

from credence_common.contracts.errors import Conflict, InvalidInput, NotFound, RateLimited, Unauthorized
from services.identity.adapters.sms import sign
from services.identity.service import IdentityService
from tests.integration.conftest import query, rpc_proxy, signed_actor, wait_for
from tests.integration.test_identity import (
    EMAIL,
    MOBILE,
    PASSWORD,
    age_codes,
    register,
    registration,
    texted_code,
)

STAFF = signed_actor({"subject": "staff:admin", "role": "staff"})


def test_a_guesser_is_locked_out_from_their_address_but_the_owner_is_not(start_service):
    container, config = start_service(IdentityService)
    with rpc_proxy("identity", config) as identity:
        register(identity)
        for _ in range(5):
            with pytest.raises(Unauthorized):
                identity.login({"login": EMAIL, "password": "Wrong-guess-77"}, "203.0.113.9")
        with pytest.raises(RateLimited):
            identity.login({"login": EMAIL, "password": PASSWORD}, "203.0.113.9")
        owner = identity.login({"login": EMAIL, "password": PASSWORD}, "198.51.100.7")
        assert owner["role"] == "candidate"


def test_many_failures_never_overflow_the_lockout(start_service):
    from datetime import timedelta

    from credence_common.contracts.envelope import utcnow
    from services.identity import domain

    now = utcnow()
    assert domain.lockout_until(10_000, now) == now + timedelta(minutes=15)
    container, config = start_service(IdentityService)
    with rpc_proxy("identity", config) as identity:
        for n in range(8):  # each from a new address: the per-name counter keeps counting
            with pytest.raises((Unauthorized, RateLimited)):
                identity.login({"login": "nobody@example.com", "password": "x"}, f"203.0.113.{n}")
    failures = sorted(row[0] for row in query(config["DB_URI"], "select failures from login_throttle"))
    assert failures[-1] == 8 and failures.count(1) == 8


def test_a_burst_of_code_requests_sends_one_text(start_service):
    container, config = start_service(IdentityService)

    def ask(n):
        with rpc_proxy("identity", config) as proxy:
            try:
                return proxy.request_mobile_code({"mobile": MOBILE, "purpose": "registration"}, f"10.1.1.{n}")["status"]
            except (RateLimited, Conflict) as refused:
                return refused.code

    outcomes = list(eventlet.GreenPool(6).imap(ask, range(6)))
    assert outcomes.count("sent") == 1
    assert query(config["DB_URI"], "select count(*) from dev_sms_messages") == [(1,)]


def test_new_codes_do_not_buy_new_guesses(start_service):
    container, config = start_service(IdentityService)
    with rpc_proxy("identity", config) as identity:
        wrong_so_far = 0
        while wrong_so_far < 10:
            code = texted_code(identity)
            wrong = "000000" if code != "000000" else "111111"
            for _ in range(5):
                with pytest.raises(InvalidInput):
                    identity.register_candidate(registration(wrong))
                wrong_so_far += 1
            age_codes(config["DB_URI"])
        with pytest.raises(RateLimited) as no_more:
            identity.request_mobile_code({"mobile": MOBILE, "purpose": "registration"}, "10.0.0.1")
        assert no_more.value.code == "code_daily_limit"
    assert query(config["DB_URI"], "select count(*) from candidates") == [(0,)]


def test_a_registration_conflict_uses_up_the_code(start_service):
    container, config = start_service(IdentityService)
    with rpc_proxy("identity", config) as identity:
        register(identity)
        code = texted_code(identity, "13912345678")
        probe = registration(code, mobile="13912345678", email="probe@example.com")
        with pytest.raises(Conflict):
            identity.register_candidate(probe)
        with pytest.raises(InvalidInput) as second_probe:  # no free enumeration with one code
            identity.register_candidate(dict(probe, email="probe2@example.com"))
        assert second_probe.value.code == "invalid_code"


def test_security_questions_come_from_a_fixed_list(start_service):
    container, config = start_service(IdentityService)
    with rpc_proxy("identity", config) as identity:
        with pytest.raises(InvalidInput):
            identity.register_candidate(registration(texted_code(identity), security_question="My secret?",
                                                     security_answer="abc"))
        from credence_common.contracts.identity import SECURITY_QUESTIONS

        decoy = identity.security_question({"login": "nobody@example.com"})["security_question"]
        assert decoy in SECURITY_QUESTIONS


def test_an_institution_never_holds_its_students_password(start_service):
    container, config = start_service(IdentityService)
    with rpc_proxy("identity", config) as identity:
        identity.create_institution(STAFF, {"name": "Sunrise School", "admin_username": "sunrise",
                                            "admin_password": "Amber-fox 31 lantern"})
        school = signed_actor({"subject": "institution:sunrise", "role": "institution"})
        code = texted_code(identity)
        with pytest.raises(InvalidInput):  # a password field is refused outright
            identity.register_student(school, registration(code))
        fields = {k: v for k, v in registration(code).items() if k != "password"}
        student = identity.register_student(school, fields)
        assert student["status"] == "pre_registered"
        age_codes(config["DB_URI"])
        reset_code = texted_code(identity, purpose="password_reset", client="10.0.0.5")
        identity.reset_password_with_code({"mobile": MOBILE, "code": reset_code, "new_password": "Own-choice 58 ferry"})
        assert identity.login({"login": MOBILE, "password": "Own-choice 58 ferry"})["subject"] == \
            student["candidate_id"]


def test_new_ticket_numbers_skip_imported_ones(start_service):
    from services.identity import domain

    container, config = start_service(IdentityService)
    first_new = domain.format_ticket_number("11", 2026, 1)
    with rpc_proxy("identity", config) as identity:
        identity.import_legacy_tickets(STAFF, {"tickets": [
            {"ticket_number": first_new, "resident_id_number": "110105197001010011", "exam_region": "11"}]})
        candidate = register(identity)
        confirmed = identity.confirm_identity(signed_actor({"subject": candidate["candidate_id"], "role": "candidate"}),
                                              candidate["candidate_id"],
                                              {"id_card_image_ref": "c", "liveness_ref": "l"})
    assert confirmed["ticket_number"] == domain.format_ticket_number("11", 2026, 2)


class _Gateway(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((body, self.headers["X-Credence-Signature"]))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_the_webhook_adapter_sends_texts_after_commit_signed(start_service):
    server = HTTPServer(("127.0.0.1", 0), _Gateway)
    _Gateway.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        container, config = start_service(IdentityService, SMS_ADAPTER="webhook", SMS_POLL_INTERVAL=0.1,
                                          SMS_WEBHOOK_URL=f"http://127.0.0.1:{server.server_port}/sms",
                                          SMS_WEBHOOK_SECRET="test-sms-secret")
        with rpc_proxy("identity", config) as identity:
            answer = identity.request_mobile_code({"mobile": MOBILE, "purpose": "registration"}, "10.0.0.1")
            assert answer["status"] == "sent"
            unknown = identity.request_mobile_code({"mobile": "13912345678", "purpose": "password_reset"}, "10.0.0.1")
            assert unknown == answer  # the same answer for a number nobody registered
            with pytest.raises(NotFound):
                identity.dev_sms_messages({"mobile": MOBILE})
        wait_for(lambda: _Gateway.received, what="the text reached the SMS gateway")
        body, signature = _Gateway.received[0]
        assert signature == sign("test-sms-secret", body)
        message = json.loads(body)
        assert message["to"] == "+8613812345678" and re.search(r"\b\d{6}\b", message["text"])
        wait_for(lambda: query(config["DB_URI"], "select state from sms_queue") == [("sent",)], what="marked sent")
        stored = repr(query(config["DB_URI"], "select * from sms_queue"))
        assert MOBILE not in stored and message["text"] not in stored
        assert query(config["DB_URI"], "select text_encrypted from sms_queue") == [("",)]  # the code went with it
        assert len(_Gateway.received) == 1  # nothing was texted to the unregistered number
    finally:
        server.shutdown()
