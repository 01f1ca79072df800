"""Identity's use cases refuse by raising; the refusals that must keep what the call wrote (a failed sign-in
counted, a wrong code's try burnt, a code used up) raise ``CommitThenRefuse``, which identity's unit of work
commits before it raises the refusal. On SQLite and PostgreSQL, without a broker."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from credence_common.crypto import KeyRing
from credence_common.db import CommitSignal, UnitOfWork, make_engine
from credence_common.errors import InvalidInput, RateLimited, Unauthorized
from credence_common.events import utcnow
from services.identity import usecases
from services.identity.adapters.protection import PersonalDataProtection
from services.identity.dependencies import IdentityUnitOfWork
from services.identity.domain import codes
from services.identity.models import LoginThrottle, OneTimeCode
from services.identity.usecases import CommitThenRefuse

UNREGISTERED = "13700000001"


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


def test_every_refused_staff_password_is_counted_until_the_name_is_locked(identity_db, protection):
    unit = IdentityUnitOfWork(identity_db, CommitSignal())
    with unit.transaction() as session:
        usecases.ensure_bootstrap_staff(session, "admin", "Staff-password-2026")
    for _ in range(5):
        with pytest.raises(Unauthorized), unit.transaction() as session:
            usecases.authenticate_staff(session, protection, "admin", "Wrong-guess-77", "203.0.113.9")
    with pytest.raises(RateLimited) as locked, unit.transaction() as session:
        usecases.authenticate_staff(session, protection, "admin", "Staff-password-2026", "203.0.113.9")
    assert locked.value.code == "too_many_attempts"
    with unit.transaction() as session:  # the owner, from elsewhere, is not locked out
        assert usecases.authenticate_staff(session, protection, "admin", "Staff-password-2026",
                                           "198.51.100.7").role == "staff"
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
