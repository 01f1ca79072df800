"""Identity's use cases refuse by raising; the refusals that must keep what the call wrote (a failed sign-in
counted, a wrong code's try burnt, a code used up) raise ``CommitThenRefuse``, which identity's unit of work
commits before it raises the refusal. On SQLite and PostgreSQL, without a broker.

Proved elsewhere through the service: candidate sign-in lockouts (test_identity.py, test_identity_abuse.py), a wrong
code's tries (test_identity.py::test_code_rules_single_use_five_tries_resend_interval), a registration conflict using
up its code (test_identity_abuse.py), a replayed refresh token ending every session (test_identity.py), a refused
registry check booked against the day (test_identity_faceid.py)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import Conflict, InvalidInput, RateLimited, Unauthorized
from credence_common.contracts.identity import SECURITY_QUESTIONS, CreateInstitution, RegisterCandidate
from credence_common.persistence.db import CommitSignal, UnitOfWork, make_engine
from credence_common.security.crypto import KeyRing
from services.identity import usecases
from services.identity.adapters.faceid import SessionResult
from services.identity.adapters.protection import PersonalDataProtection
from services.identity.dependencies import IdentityUnitOfWork
from services.identity.domain import codes
from services.identity.models import IdentityLivenessSession, LoginThrottle, OneTimeCode
from services.identity.usecases import CommitThenRefuse, institutions, liveness, throttling

UNREGISTERED = "13700000001"
MOBILE = "13812345678"
PASSWORD = "Tiger-lily 47 canoe"


@pytest.fixture
def identity_db(databases):
    engine = make_engine(databases.create("identity"))
    yield engine
    engine.dispose()


@pytest.fixture
def protection() -> PersonalDataProtection:
    return PersonalDataProtection(KeyRing.from_spec("k1=test-identity-data-key", "k1"), "test-identity-index-key")


def throttle_rows(engine) -> list[str]:
    unit = UnitOfWork(engine, CommitSignal())
    try:
        with unit.transaction() as session:
            return list(session.scalars(select(LoginThrottle.login_index)))
    finally:
        unit.close()


def test_commit_then_refuse_keeps_what_the_call_wrote_and_a_plain_refusal_keeps_nothing(identity_db):
    unit = IdentityUnitOfWork(identity_db, CommitSignal())
    with pytest.raises(Unauthorized) as kept:
        with unit.transaction() as session:
            session.add(LoginThrottle(login_index="kept", failures=1))
            raise CommitThenRefuse(Unauthorized("invalid_credentials", "wrong"))
    assert kept.value.code == "invalid_credentials"
    with pytest.raises(Unauthorized):
        with unit.transaction() as session:
            session.add(LoginThrottle(login_index="rolled-back", failures=1))
            raise Unauthorized("invalid_credentials", "wrong")
    unit.close()
    assert throttle_rows(identity_db) == ["kept"]


def test_a_unit_of_work_that_does_not_know_it_fails_loudly_instead_of_losing_the_count(identity_db):
    unit = UnitOfWork(identity_db, CommitSignal())  # not identity's: CommitThenRefuse is no CredenceError there
    with pytest.raises(CommitThenRefuse):
        with unit.transaction() as session:
            session.add(LoginThrottle(login_index="lost", failures=1))
            raise CommitThenRefuse(Unauthorized("invalid_credentials", "wrong"))
    unit.close()
    assert throttle_rows(identity_db) == []


def refused_until_locked(unit, attempt, right, wrong) -> int:
    """How many wrong secrets were refused as wrong (each one committed, counted) before the name locked; the
    right secret is then refused too."""
    refused = 0
    while True:
        try:
            with unit.transaction() as session:
                attempt(session, wrong)
        except Unauthorized:
            refused += 1
            assert refused <= 50, "the wrong guesses were never counted"
            continue
        except RateLimited as locked:
            assert locked.code == "too_many_attempts"
            break
    with pytest.raises(RateLimited), unit.transaction() as session:
        attempt(session, right)
    return refused


def test_every_refused_staff_password_is_counted_until_the_name_is_locked(identity_db, protection):
    unit = IdentityUnitOfWork(identity_db, CommitSignal())
    now = utcnow()  # one instant for every call: the first lock lasts a second only
    with unit.transaction() as session:
        usecases.ensure_bootstrap_staff(session, "admin", "Staff-password-2026")
    assert refused_until_locked(unit, lambda session, password: usecases.authenticate_staff(
        session, protection, "admin", password, "203.0.113.9", now=now), "Staff-password-2026",
        "Wrong-guess-77") == throttling.FREE_PER_CLIENT + 1
    with unit.transaction() as session:  # the owner, from elsewhere, is not locked out
        assert usecases.authenticate_staff(session, protection, "admin", "Staff-password-2026",
                                           "198.51.100.7", now=now).role == "staff"
    unit.close()


def register_candidate(unit, protection, now) -> str:
    class Texts:
        sent: list[str] = []

        def send(self, session, mobile, index, text, purpose=None, params=None):
            self.sent.append(params[0])

    texts = Texts()
    with unit.transaction() as session:
        usecases.request_code(session, protection, texts, MOBILE, "registration", "10.0.0.9", now=now)
    with unit.transaction() as session:
        return usecases.register_candidate(session, protection, RegisterCandidate(
            full_name="王小明", resident_id_number="11010519491231002X", mobile=MOBILE, mobile_code=texts.sent[-1],
            email="wang.xiaoming@example.com", password=PASSWORD, exam_region="11",
            security_question=SECURITY_QUESTIONS[0], security_answer="Mrs Zhou"), now=now).candidate_id


def test_every_refused_current_password_and_security_answer_is_counted(identity_db, protection):
    unit = IdentityUnitOfWork(identity_db, CommitSignal())
    now = utcnow()
    candidate_id = register_candidate(unit, protection, now)
    # the current password is asked of a signed-in candidate: one budget per account, with no address
    assert refused_until_locked(unit, lambda session, password: usecases.change_password(
        session, protection, candidate_id, password, "Blue-heron 82 kayak", now=now), PASSWORD,
        "Wrong-guess-77") == throttling.FREE_PER_NAME + 1
    assert refused_until_locked(unit, lambda session, answer: usecases.reset_password_with_answer(
        session, protection, MOBILE, answer, "Blue-heron 82 kayak", "203.0.113.9", now=now), "mrs zhou",
        "Mr Li") == throttling.FREE_PER_CLIENT + 1
    unit.close()


def test_every_refused_institution_password_is_counted(identity_db, protection):
    unit = IdentityUnitOfWork(identity_db, CommitSignal())
    now = utcnow()
    with unit.transaction() as session:
        institutions.create_institution(session, CreateInstitution(
            name="Haidian Training School", admin_username="haidian.admin", admin_password="Institution-pass 2026"))
    assert refused_until_locked(unit, lambda session, password: institutions.authenticate(
        session, protection, "haidian.admin", password, "203.0.113.9", now=now), "Institution-pass 2026",
        "Wrong-guess-77") == throttling.FREE_PER_CLIENT + 1
    unit.close()


@pytest.mark.parametrize("purpose", ["sign_in", "ticket_lookup", "password_reset"])
def test_a_right_code_for_a_number_nobody_registered_is_refused_and_stays_used_up(identity_db, protection, purpose):
    unit = IdentityUnitOfWork(identity_db, CommitSignal())
    now = utcnow()
    mobile_index = protection.index(UNREGISTERED, "mobile")
    code_id, code = str(uuid.uuid4()), "123456"
    with unit.transaction() as session:
        session.add(OneTimeCode(code_id=code_id, mobile_index=mobile_index, client_index="test", purpose=purpose,
                                code_digest=codes.code_digest(protection.code_key, code_id, mobile_index, purpose,
                                                              code),
                                created_at=now, expires_at=now + timedelta(minutes=5), wrong_tries=0))
    use = {"sign_in": lambda session: usecases.login_with_code(session, protection, UNREGISTERED, code),
           "ticket_lookup": lambda session: usecases.lookup_ticket(session, protection, UNREGISTERED, code),
           "password_reset": lambda session: usecases.reset_password_with_code(
               session, protection, UNREGISTERED, code, "Tiger-lily 47 canoe")}[purpose]
    with pytest.raises(InvalidInput) as refused, unit.transaction() as session:
        use(session)
    assert refused.value.code == "invalid_code"
    with unit.transaction() as session:
        assert session.get(OneTimeCode, code_id).consumed_at is not None
    unit.close()


@pytest.mark.parametrize("kind, code", [("expired", "liveness_session_expired"),
                                        ("inconclusive", "liveness_inconclusive")])
def test_a_session_the_vendor_calls_expired_or_inconclusive_is_closed_and_refused(identity_db, protection, kind,
                                                                                  code):
    unit = IdentityUnitOfWork(identity_db, CommitSignal())
    now = utcnow()
    candidate_id = register_candidate(unit, protection, now)
    with unit.transaction() as session:
        subject = liveness.subject_for_new_session(session, protection, candidate_id, now=now)
        liveness.record_session(session, protection, subject, subject.session_id, "tencent_faceid",
                                "https://faceid.example/h5", "BIZ-TOKEN", now=now)
    with unit.transaction() as session:
        subject = liveness.subject_for_confirmation(session, protection, candidate_id, "BIZ-TOKEN", now=now)
    with pytest.raises(Conflict) as refused, unit.transaction() as session:
        liveness.decide(session, subject, SessionResult(kind), "tencent_faceid", now=now)
    assert refused.value.code == code
    with unit.transaction() as session:  # closed for good: its token cannot be used again
        assert session.get(IdentityLivenessSession, subject.session_id).status == kind
        with pytest.raises(Conflict) as used:
            liveness.subject_for_confirmation(session, protection, candidate_id, "BIZ-TOKEN", now=now)
    assert used.value.code == "liveness_session_used"
    unit.close()


def test_a_refresh_token_of_a_removed_staff_account_stays_revoked_for_whoever_takes_the_name(identity_db, protection):
    """The refusal keeps the token revoked: an account created under the same name later is not signed in by a
    token of the one that is gone (here a token whose account no longer exists, as after a removal in the
    database: there is no API for one)."""
    from services.identity.models import RefreshToken

    unit = IdentityUnitOfWork(identity_db, CommitSignal())
    now = utcnow()
    with unit.transaction() as session:
        token = usecases.issue_refresh_token(session, protection, "staff:gone", "staff", now)
    with pytest.raises(Unauthorized) as refused, unit.transaction() as session:
        usecases.refresh(session, protection, token, now=now)
    assert refused.value.code == "invalid_refresh_token"
    with unit.transaction() as session:
        assert session.get(RefreshToken, token.partition(".")[0]).revoked_at is not None
        usecases.ensure_bootstrap_staff(session, "gone", "Another-password-2026")
    with pytest.raises(Unauthorized) as again, unit.transaction() as session:
        usecases.refresh(session, protection, token, now=now)
    assert again.value.code == "invalid_refresh_token"
    unit.close()
