"""Identity in a real nameko container, on real RabbitMQ and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from datetime import timedelta

import eventlet
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import Conflict, Forbidden, InvalidInput, NotFound, RateLimited, Unauthorized
from credence_common.persistence.db import make_engine
from credence_common.security.crypto import KeyRing
from services.identity import usecases
from services.identity.adapters.protection import PersonalDataProtection
from services.identity.models import OneTimeCode
from services.identity.service import IdentityService
from tests.integration.conftest import query, rpc_proxy, signed_actor

VALID_ID = "11010519491231002X"
MOBILE = "13812345678"
EMAIL = "wang.xiaoming@example.com"
PASSWORD = "Tiger-lily 47 canoe"
CANDIDATE = {"role": "candidate"}


def registration(code: str, **changes) -> dict:
    request = {"full_name": "王小明", "resident_id_number": VALID_ID, "mobile": MOBILE, "mobile_code": code,
               "email": EMAIL, "password": PASSWORD, "exam_region": "11"}
    request.update(changes)
    return request


def texted_code(identity, mobile: str = MOBILE, purpose: str = "registration", client: str = "10.0.0.1") -> str:
    identity.request_mobile_code({"mobile": mobile, "purpose": purpose}, client)
    messages = identity.dev_sms_messages({"mobile": mobile})["messages"]
    return re.search(r"\b(\d{6})\b", messages[0]).group(1)


def register(identity, db_uri: str | None = None, **changes) -> dict:
    mobile = changes.get("mobile", MOBILE)
    return identity.register_candidate(registration(texted_code(identity, mobile), **changes))


def all_text_in(db_uri: str) -> str:
    rows = query(db_uri, "select * from candidates") + query(db_uri, "select * from outbox") + \
        query(db_uri, "select * from one_time_codes") + query(db_uri, "select * from identity_confirmations")
    return repr(rows)


def test_registration_with_a_texted_code_stores_personal_data_encrypted(start_service, event_spy):
    container, config = start_service(IdentityService)
    spy = event_spy("identity")
    with rpc_proxy("identity", config) as identity:
        candidate = register(identity)
        assert candidate["status"] == "pre_registered"
        assert candidate["resident_id_number_masked"] == "110105********002X"
        assert candidate["mobile_masked"] == "138****5678"
        assert candidate["email_masked"].endswith("@example.com") and "wang" not in candidate["email_masked"]
        assert candidate["registered_at"].endswith(("Z", "+00:00"))
    stored = all_text_in(config["DB_URI"])
    for secret in (VALID_ID, MOBILE, EMAIL, PASSWORD):
        assert secret not in stored, "personal data must be encrypted at rest"
    registered = spy.collect(1)
    assert registered[0]["type"] == "credence.identity.candidate_registered.v1"
    assert VALID_ID not in repr(registered) and MOBILE not in repr(registered)


def test_registration_refuses_bad_input_and_duplicates_and_changes_nothing(start_service):
    container, config = start_service(IdentityService)
    with rpc_proxy("identity", config) as identity:
        code = texted_code(identity)
        cases = {
            "invalid_resident_id_number": registration(code, resident_id_number="110105194912310021"),
            "invalid_email": registration(code, email="not-an-email"),
            "invalid_mobile": registration(code, mobile="02012345678"),
            "weak_password": registration(code, password="password1"),
        }
        for expected, request in cases.items():
            with pytest.raises(InvalidInput) as refused:
                identity.register_candidate(request)
            assert refused.value.code == expected
        with pytest.raises(InvalidInput) as birthday:
            identity.register_candidate(registration(code, password="Xq19491231!"))
        assert birthday.value.code == "weak_password"
        with pytest.raises(InvalidInput) as wrong_code:
            identity.register_candidate(registration("000000" if code != "000000" else "111111"))
        assert wrong_code.value.code == "invalid_code"

        identity.register_candidate(registration(code))
        with pytest.raises(InvalidInput):  # the code was used up
            identity.register_candidate(registration(code, email="second@example.com"))

        same_id = registration(texted_code(identity, "13912345678"), mobile="13912345678", email="other@example.com")
        age_codes(config["DB_URI"])
        same_mobile = registration(texted_code(identity), resident_id_number="110105197001010011",
                                   email="third@example.com")
        for request in (same_id, same_mobile):
            with pytest.raises(Conflict) as duplicate:
                identity.register_candidate(request)
            assert duplicate.value.code == "already_registered"
            assert "王" not in duplicate.value.message and "138" not in duplicate.value.message
    assert query(config["DB_URI"], "select count(*) from candidates") == [(1,)]


def age_codes(db_uri: str) -> None:
    """Move every code two minutes into the past, as if the resend interval had passed."""
    engine = make_engine(db_uri)
    with Session(engine) as session, session.begin():
        for row in session.scalars(select(OneTimeCode)):
            row.created_at -= timedelta(minutes=2)
    engine.dispose()


def test_code_rules_single_use_five_tries_resend_interval(start_service):
    container, config = start_service(IdentityService)
    with rpc_proxy("identity", config) as identity:
        code = texted_code(identity)
        with pytest.raises(RateLimited) as too_soon:
            identity.request_mobile_code({"mobile": MOBILE, "purpose": "registration"}, "10.0.0.1")
        assert too_soon.value.code == "code_resend_too_soon"
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(5):
            with pytest.raises(InvalidInput):
                identity.register_candidate(registration(wrong))
        with pytest.raises(InvalidInput) as dead:
            identity.register_candidate(registration(code))  # right code, but five wrong tries killed it
        assert dead.value.code == "invalid_code"
    assert query(config["DB_URI"], "select wrong_tries from one_time_codes") == [(5,)]
    assert query(config["DB_URI"], "select count(*) from candidates") == [(0,)]


def test_code_expiry_and_daily_caps(start_service):
    container, config = start_service(IdentityService)
    engine = make_engine(config["DB_URI"])
    protection = PersonalDataProtection(KeyRing.from_spec(config["IDENTITY_DATA_KEYS"], "k1"),
                                        config["IDENTITY_INDEX_KEY"])

    class Outbox:
        sent: list[str] = []

        def send(self, session, mobile, index, text, purpose=None, params=None):
            self.sent.append(re.search(r"\b(\d{6})\b", text).group(1))

    sms = Outbox()
    # mid-morning: the 14 minutes this test spans must not cross midnight, when the daily cap starts again
    start = utcnow().replace(hour=10, minute=0, second=0, microsecond=0)
    with Session(engine) as session, session.begin():
        usecases.request_code(session, protection, sms, MOBILE, "registration", "10.0.0.9", now=start)
    with Session(engine) as session, session.begin(), pytest.raises(InvalidInput):
        late = start + timedelta(minutes=5, seconds=1)
        usecases.consume_code(session, protection, MOBILE, "registration", sms.sent[-1], late)
    refused = []
    for minute in range(2, 14):
        with Session(engine) as session, session.begin():
            try:
                usecases.request_code(session, protection, sms, MOBILE, "registration", "10.0.0.9",
                                      now=start + timedelta(minutes=minute))
            except RateLimited as refusal:
                refused.append(refusal)
    assert len(sms.sent) == 10 and refused and refused[0].code == "code_daily_limit"
    engine.dispose()


def test_login_by_email_or_mobile_with_lockout_that_reveals_nothing(start_service):
    container, config = start_service(IdentityService)
    with rpc_proxy("identity", config) as identity:
        candidate = register(identity)
        by_email = identity.login({"login": EMAIL.upper(), "password": PASSWORD})
        by_mobile = identity.login({"login": "+86 138 1234 5678", "password": PASSWORD})
        assert by_email["subject"] == by_mobile["subject"] == candidate["candidate_id"]
        assert by_email["refresh_token"] != by_mobile["refresh_token"]

        errors = []
        for login in (EMAIL, "nobody@example.com"):
            for _ in range(5):
                with pytest.raises(Unauthorized) as wrong:
                    identity.login({"login": login, "password": "Wrong-password-9"})
                errors.append((wrong.value.code, wrong.value.message))
            with pytest.raises(RateLimited) as locked:
                identity.login({"login": login, "password": PASSWORD if login == EMAIL else "x"})
            errors.append((locked.value.code, locked.value.message.split(";")[0]))
        assert errors[:6] == errors[6:]  # a registered and an unknown login name behave alike
        assert errors[5][0] == "too_many_attempts"


def test_refresh_tokens_rotate_and_a_reused_one_ends_every_session(start_service):
    container, config = start_service(IdentityService)
    with rpc_proxy("identity", config) as identity:
        register(identity)
        first = identity.login({"login": EMAIL, "password": PASSWORD})["refresh_token"]
        other_device = identity.login({"login": MOBILE, "password": PASSWORD})["refresh_token"]
        second = identity.refresh_session({"refresh_token": first})["refresh_token"]
        assert second != first
        with pytest.raises(Unauthorized):
            identity.refresh_session({"refresh_token": first})  # replayed: treated as stolen
        for token in (second, other_device):
            with pytest.raises(Unauthorized):
                identity.refresh_session({"refresh_token": token})
        third = identity.login({"login": EMAIL, "password": PASSWORD})["refresh_token"]
        identity.logout({"refresh_token": third})
        with pytest.raises(Unauthorized):
            identity.refresh_session({"refresh_token": third})
        with pytest.raises(Unauthorized):
            identity.refresh_session({"refresh_token": "garbage"})


def test_password_change_and_both_kinds_of_reset(start_service):
    container, config = start_service(IdentityService)
    with rpc_proxy("identity", config) as identity:
        candidate = register(identity, security_question="What was the name of your first teacher?",
                             security_answer="Mrs  Zhou")
        actor = signed_actor(dict(CANDIDATE, subject=candidate["candidate_id"]))
        session = identity.login({"login": EMAIL, "password": PASSWORD})["refresh_token"]
        with pytest.raises(Unauthorized):
            identity.change_password(actor, {"current_password": "wrong", "new_password": "Blue-heron 82 kayak"})
        with pytest.raises(InvalidInput) as weak:
            identity.change_password(actor, {"current_password": PASSWORD, "new_password": "12345678"})
        assert weak.value.code == "weak_password"
        identity.change_password(actor, {"current_password": PASSWORD, "new_password": "Blue-heron 82 kayak"})
        with pytest.raises(Unauthorized):
            identity.refresh_session({"refresh_token": session})  # the password change ended it

        reset_code = texted_code(identity, purpose="password_reset", client="10.0.0.2")
        identity.reset_password_with_code({"mobile": MOBILE, "code": reset_code, "new_password": "Red-kite 19 sails"})
        assert identity.login({"login": EMAIL, "password": "Red-kite 19 sails"})["subject"] == candidate["candidate_id"]

        assert identity.security_question({"login": EMAIL}) == {
            "security_question": "What was the name of your first teacher?"}
        decoy = identity.security_question({"login": "nobody@example.com"})["security_question"]
        assert decoy == identity.security_question({"login": "nobody@example.com"})["security_question"]
        with pytest.raises(Unauthorized):
            identity.reset_password_with_answer({"login": EMAIL, "security_answer": "Mr Li",
                                                 "new_password": "Grey-owl 55 river"})
        identity.reset_password_with_answer({"login": MOBILE, "security_answer": " mrs zhou ",
                                             "new_password": "Grey-owl 55 river"})
        signed_in = identity.login({"login": MOBILE, "password": "Grey-owl 55 river"})
        assert signed_in["subject"] == candidate["candidate_id"]


def test_confirmation_online_rejected_then_retried_on_site_and_owner_only_ticket_lookup(start_service, event_spy):
    container, config = start_service(IdentityService)
    spy = event_spy("identity", "credence.identity.candidate_confirmed.v1")
    with rpc_proxy("identity", config) as identity:
        candidate = register(identity)
        other = register(identity, mobile="13912345678", email="li.si@example.com",
                         resident_id_number="110105197001010011", full_name="李四")
        actor = signed_actor(dict(CANDIDATE, subject=candidate["candidate_id"]))
        with pytest.raises(Forbidden):
            identity.get_candidate(actor, other["candidate_id"])
        with pytest.raises(Forbidden):
            identity.confirm_identity_on_site(actor, candidate["candidate_id"], {"decision": "approve"})

        rejected = identity.confirm_identity(actor, candidate["candidate_id"], {
            "id_card_image_ref": "upload/card.jpg", "liveness_ref": "liveness/reject-me.mp4"})
        assert rejected["status"] == "rejected" and rejected["rejection_reason"] == "face_mismatch"
        assert rejected["ticket_number"] is None
        confirmed = identity.confirm_identity(actor, candidate["candidate_id"], {
            "id_card_image_ref": "upload/card.jpg", "liveness_ref": "liveness/ok.mp4"})
        assert confirmed["status"] == "confirmed" and re.fullmatch(r"1126\d{7}[\dX]", confirmed["ticket_number"])

        staff = signed_actor({"subject": "staff:admin", "role": "staff"})
        with pytest.raises(InvalidInput):
            identity.confirm_identity_on_site(staff, other["candidate_id"], {"decision": "reject"})
        on_site = identity.confirm_identity_on_site(staff, other["candidate_id"], {"decision": "approve"})
        assert on_site["confirmation_method"] == "on_site"
        with pytest.raises(Conflict):
            identity.confirm_identity_on_site(staff, other["candidate_id"], {"decision": "approve"})

        lookup_code = texted_code(identity, purpose="ticket_lookup", client="10.0.0.3")
        found = identity.lookup_ticket({"mobile": MOBILE, "code": lookup_code})
        assert found == {"full_name": "王小明", "status": "confirmed", "ticket_number": confirmed["ticket_number"]}
        with pytest.raises(InvalidInput):
            identity.lookup_ticket({"mobile": MOBILE, "code": lookup_code})  # single use

        # 本人查询: the holder signs in with a texted code instead of the password
        sign_in = texted_code(identity, purpose="sign_in", client="10.0.0.4")
        with pytest.raises(InvalidInput):
            identity.login_with_code({"mobile": MOBILE, "code": lookup_code})  # a code for another purpose
        with pytest.raises(InvalidInput):
            identity.login_with_code({"mobile": "13800138999", "code": sign_in})  # another number
        signed_in = identity.login_with_code({"mobile": MOBILE, "code": sign_in})
        assert signed_in["subject"] == candidate["candidate_id"] and signed_in["role"] == "candidate"
        assert signed_in["refresh_token"]
        with pytest.raises(InvalidInput):
            identity.login_with_code({"mobile": MOBILE, "code": sign_in})  # single use
        with pytest.raises(NotFound):
            identity.get_candidate(staff, "no-such-candidate")
    events = spy.collect(2)
    assert sorted(e["data"]["method"] for e in events) == ["on_site", "online"]
    assert spy.drain(config["DB_URI"]) == []
    assert query(config["DB_URI"], "select decision, reason from identity_confirmations order by decided_at") == [
        ("rejected", "face_mismatch"), ("approved", None), ("approved", None)]


def test_concurrent_confirmations_give_one_ticket_number(start_service, event_spy):
    container, config = start_service(IdentityService)
    spy = event_spy("identity", "credence.identity.candidate_confirmed.v1")
    with rpc_proxy("identity", config) as identity:
        candidate = register(identity)
    actor = signed_actor(dict(CANDIDATE, subject=candidate["candidate_id"]))
    evidence = {"id_card_image_ref": "card", "liveness_ref": "live"}

    def confirm(_):
        with rpc_proxy("identity", config) as proxy:
            return proxy.confirm_identity(actor, candidate["candidate_id"], evidence)["ticket_number"]

    tickets = list(eventlet.GreenPool(6).imap(confirm, range(6)))
    assert len(set(tickets)) == 1
    assert query(config["DB_URI"], "select ticket_number from candidates") == [(tickets[0],)]
    assert len(spy.collect(1)) == 1 and spy.drain(config["DB_URI"]) == []


def test_keys_rotate_without_losing_anyone(container_factory, service_config):
    config = service_config("identity")
    first = container_factory(IdentityService, config)
    first.start()
    with rpc_proxy("identity", config) as identity:
        candidate = register(identity)
    first.stop()
    rotated = dict(config, IDENTITY_DATA_KEYS="k2=new-identity-data-key," + config["IDENTITY_DATA_KEYS"],
                   IDENTITY_DATA_ACTIVE_KEY_ID="k2")
    second = container_factory(IdentityService, rotated)
    second.start()
    with rpc_proxy("identity", rotated) as identity:
        assert identity.login({"login": EMAIL, "password": PASSWORD})["subject"] == candidate["candidate_id"]
        later = register(identity, mobile="13912345678", email="li.si@example.com",
                         resident_id_number="110105197001010011", full_name="李四")
        actor = signed_actor({"subject": candidate["candidate_id"], "role": "candidate"})
        assert identity.get_candidate(actor, candidate["candidate_id"])["mobile_masked"] == "138****5678"
        identity.confirm_identity(actor, candidate["candidate_id"], {"id_card_image_ref": "c", "liveness_ref": "l"})
    key_ids = {row[0].split("$")[0] for row in query(config["DB_URI"], "select resident_id_encrypted from candidates")}
    assert key_ids == {"k1", "k2"} and later["status"] == "pre_registered"


def test_control_characters_are_refused_before_they_reach_the_database(start_service):
    container, config = start_service(IdentityService)
    with rpc_proxy("identity", config) as identity:
        with pytest.raises(InvalidInput) as nul:
            identity.login({"login": "\u0000", "password": "x"})
        assert nul.value.code == "invalid_characters"
    assert query(config["DB_URI"], "select count(*) from login_throttle") == [(0,)]


STAFF = signed_actor({"subject": "staff:admin", "role": "staff"})


def test_institutions_confirm_their_own_students_only(start_service):
    container, config = start_service(IdentityService)
    with rpc_proxy("identity", config) as identity:
        with pytest.raises(Forbidden):
            identity.create_institution(signed_actor({"subject": "x", "role": "candidate"}),
                                        {"name": "Sunrise School", "admin_username": "sunrise",
                                         "admin_password": "Amber-fox 31 lantern"})
        school = identity.create_institution(STAFF, {"name": "Sunrise School", "admin_username": "sunrise",
                                                     "admin_password": "Amber-fox 31 lantern"})
        other_school = identity.create_institution(STAFF, {"name": "Moon School", "admin_username": "moon",
                                                           "admin_password": "Olive-crane 64 harbour"})
        with pytest.raises(Conflict):
            identity.create_institution(STAFF, {"name": "Sunrise School", "admin_username": "sunrise2",
                                                "admin_password": "Amber-fox 31 lantern"})
        code = texted_code(identity)
        with pytest.raises(InvalidInput):  # a candidate cannot declare themself an institution's student
            identity.register_candidate(dict(registration(code), institution_id=school["institution_id"]))
        principal = identity.authenticate_institution({"username": "sunrise", "password": "Amber-fox 31 lantern"})
        assert principal["role"] == "institution" and principal["refresh_token"]
        # sign-in and refresh name the account's institution (the gateway's token carries it to payments)
        assert principal["institution_id"] == school["institution_id"]
        refreshed = identity.refresh_session({"refresh_token": principal["refresh_token"]})
        assert (refreshed["role"], refreshed["institution_id"]) == ("institution", school["institution_id"])
        sunrise = signed_actor({"subject": principal["subject"], "role": "institution"})
        moon = signed_actor({"subject": "institution:moon", "role": "institution"})
        student_fields = {k: v for k, v in registration(code).items() if k != "password"}
        with pytest.raises(Forbidden):
            identity.register_student(signed_actor({"subject": "cand", "role": "candidate"}), student_fields)
        student = identity.register_student(sunrise, student_fields)  # the student handed over the code
        outsider = register(identity, mobile="13912345678", email="li.si@example.com",
                            resident_id_number="110105197001010011", full_name="李四")
        with pytest.raises(Forbidden):  # an unknown id looks like someone else's record
            identity.get_candidate(sunrise, "no-such-candidate")
        assert [c["candidate_id"] for c in identity.institution_students(sunrise)["candidates"]] == [
            student["candidate_id"]]
        assert identity.institution_students(moon)["candidates"] == []
        with pytest.raises(Forbidden):
            identity.get_candidate(sunrise, outsider["candidate_id"])
        with pytest.raises(Forbidden):
            identity.confirm_identity_on_site(moon, student["candidate_id"], {"decision": "approve"})
        confirmed = identity.confirm_identity_on_site(sunrise, student["candidate_id"], {"decision": "approve"})
        assert confirmed["status"] == "confirmed" and confirmed["institution_id"] == school["institution_id"]
        assert other_school["institution_id"] != school["institution_id"]
    assert query(config["DB_URI"], "select decided_by from identity_confirmations") == [("institution:sunrise",)]


def test_older_ticket_numbers_are_linked_chosen_and_merged(start_service, event_spy):
    container, config = start_service(IdentityService)
    linked_spy = event_spy("identity", "credence.identity.tickets_linked.v1")
    merged_spy = event_spy("identity", "credence.identity.tickets_merged.v1")
    with rpc_proxy("identity", config) as identity:
        imported = identity.import_legacy_tickets(STAFF, {"tickets": [
            {"ticket_number": "440912345677", "resident_id_number": VALID_ID, "exam_region": "44"},
            {"ticket_number": "441012345676", "resident_id_number": VALID_ID, "exam_region": "44"},
            {"ticket_number": "310955555556", "resident_id_number": "110105197001010011", "exam_region": "31"}]})
        assert imported == {"imported": 3, "linked_to_confirmed_candidates": 0}
        with pytest.raises(InvalidInput) as known:  # all or none: one known ticket rejects the batch
            identity.import_legacy_tickets(STAFF, {"tickets": [
                {"ticket_number": "440912345677", "resident_id_number": VALID_ID, "exam_region": "44"},
                {"ticket_number": "449999999999", "resident_id_number": VALID_ID, "exam_region": "44"}]})
        assert [d["field"] for d in known.value.details] == ["tickets.0.ticket_number"]
        with pytest.raises(InvalidInput) as typo:  # a wrong check character is a typo: refused, nothing imported
            identity.import_legacy_tickets(STAFF, {"tickets": [
                {"ticket_number": "449999999999", "resident_id_number": VALID_ID, "exam_region": "44"},
                {"ticket_number": "441012345670", "resident_id_number": VALID_ID, "exam_region": "44"}]})
        assert typo.value.code == "invalid_legacy_tickets"
        assert typo.value.details == [{"field": "tickets.1.ticket_number",
                                       "message": "the check character does not match: a typo?"}]
        candidate = register(identity)
        actor = signed_actor(dict(CANDIDATE, subject=candidate["candidate_id"]))
        confirmed = identity.confirm_identity(actor, candidate["candidate_id"],
                                              {"id_card_image_ref": "c", "liveness_ref": "l"})
        mine = identity.my_tickets(actor)
        assert mine["primary_ticket_number"] == confirmed["ticket_number"]
        assert [t["ticket_number"] for t in mine["other_tickets"]] == ["440912345677", "441012345676"]

        chosen = identity.choose_primary_ticket(actor, {"ticket_number": "440912345677"})
        assert chosen["primary_ticket_number"] == "440912345677"
        assert confirmed["ticket_number"] in [t["ticket_number"] for t in chosen["other_tickets"]]
        with pytest.raises(InvalidInput):
            identity.choose_primary_ticket(actor, {"ticket_number": "310955555556"})  # someone else's
        with pytest.raises(InvalidInput):
            identity.merge_tickets(actor, {"ticket_numbers": ["310955555556"]})
        merged = identity.merge_tickets(actor, {"ticket_numbers": ["441012345676", confirmed["ticket_number"]]})
        assert {t["status"] for t in merged["other_tickets"]} == {"merged"}
        assert {t["merged_into"] for t in merged["other_tickets"]} == {"440912345677"}
    linked = linked_spy.collect(1)[0]["data"]
    assert linked["ticket_numbers"] == ["440912345677", "441012345676"]
    merge_event = merged_spy.collect(1)[0]["data"]
    assert merge_event["primary_ticket_number"] == "440912345677"
    assert sorted(merge_event["merged_ticket_numbers"]) == sorted(["441012345676", confirmed["ticket_number"]])


def test_prior_education_is_checked_then_proof_decided_by_staff(start_service):
    container, config = start_service(IdentityService)
    with rpc_proxy("identity", config) as identity:
        candidate = register(identity, degree_upgrade=True)
        assert candidate["prior_education_status"] == "required"
        actor = signed_actor(dict(CANDIDATE, subject=candidate["candidate_id"]))
        unknown = identity.submit_prior_education(actor, {"degree_certificate_number": "999991234567890123"})
        assert unknown["prior_education_status"] == "proof_required"
        with pytest.raises(Conflict):
            identity.decide_prior_education(STAFF, candidate["candidate_id"], {"decision": "approve"})
        submitted = identity.submit_prior_education_proof(actor, {"proof_ref": "upload/diploma.pdf"})
        assert submitted["prior_education_status"] == "proof_submitted"
        with pytest.raises(Forbidden):
            identity.decide_prior_education(actor, candidate["candidate_id"], {"decision": "approve"})
        with pytest.raises(InvalidInput):
            identity.decide_prior_education(STAFF, candidate["candidate_id"], {"decision": "reject"})
        rejected = identity.decide_prior_education(STAFF, candidate["candidate_id"],
                                                   {"decision": "reject", "reason": "unreadable scan"})
        assert rejected["prior_education_status"] == "rejected"
        identity.submit_prior_education_proof(actor, {"proof_ref": "upload/diploma-clear.pdf"})
        approved = identity.decide_prior_education(STAFF, candidate["candidate_id"], {"decision": "approve"})
        assert approved["prior_education_status"] == "verified"

        age_codes(config["DB_URI"])
        other = register(identity, mobile="13912345678", email="li.si@example.com",
                         resident_id_number="110105197001010011", full_name="李四", degree_upgrade=True)
        found = identity.submit_prior_education(signed_actor({"subject": other["candidate_id"], "role": "candidate"}),
                                                 {"degree_certificate_number": "100011202405000123"})
        assert found["prior_education_status"] == "verified"
    stored = repr(query(config["DB_URI"], "select * from prior_education_checks"))
    assert "100011202405000123" not in stored and "999991234567890123" not in stored


def test_staff_transfer_a_candidate_to_another_region(start_service, event_spy):
    container, config = start_service(IdentityService)
    spy = event_spy("identity", "credence.identity.candidate_transferred.v1")
    with rpc_proxy("identity", config) as identity:
        candidate = register(identity)
        with pytest.raises(Forbidden):
            identity.transfer_region(signed_actor(dict(CANDIDATE, subject=candidate["candidate_id"])),
                                     candidate["candidate_id"],
                                     {"to_region": "44", "reason": "moved"})
        moved = identity.transfer_region(STAFF, candidate["candidate_id"], {"to_region": "44", "reason": "moved"})
        assert moved["exam_region"] == "44"
        with pytest.raises(Conflict):
            identity.transfer_region(STAFF, candidate["candidate_id"], {"to_region": "44", "reason": "again"})
    event = spy.collect(1)[0]["data"]
    assert (event["from_region"], event["to_region"]) == ("11", "44")
