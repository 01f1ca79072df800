"""Identity service layer: each function is one transaction's worth of work on a given session."""

from __future__ import annotations

import uuid

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from credence_common.contracts.events import CandidateConfirmedV1, CandidateRegisteredV1
from credence_common.contracts.identity import (
    AuthenticatedPrincipal,
    CandidateView,
    RegisterCandidate,
)
from credence_common.errors import Conflict, NotFound, Unauthorized
from credence_common.events import utcnow
from credence_common.masking import mask_mobile, mask_resident_id
from credence_common.messaging import Outbox
from credence_common.sequences import next_value
from services.identity import domain
from services.identity.models import Candidate, NumberSequence, OutboxEvent, StaffAccount

outbox = Outbox(OutboxEvent)
password_hasher = PasswordHasher()
# Verifying against this when the account does not exist keeps the response time the same, so
# timing does not reveal which ID numbers are registered.
_DUMMY_HASH = password_hasher.hash("credence-timing-equaliser")


def candidate_view(candidate: Candidate) -> CandidateView:
    return CandidateView(
        candidate_id=candidate.candidate_id,
        full_name=candidate.full_name,
        resident_id_number_masked=mask_resident_id(candidate.resident_id_number),
        mobile_masked=mask_mobile(candidate.mobile),
        exam_region=candidate.exam_region,
        status=candidate.status,
        ticket_number=candidate.ticket_number,
        confirmation_method=candidate.confirmation_method,
        registered_at=candidate.registered_at,
        confirmed_at=candidate.confirmed_at,
    )


def register_candidate(session: Session, request: RegisterCandidate) -> CandidateView:
    full_name = domain.normalise_full_name(request.full_name)
    resident_id_number = domain.normalise_resident_id(request.resident_id_number)
    mobile = domain.normalise_mobile(request.mobile)
    exam_region = request.exam_region or domain.default_exam_region(resident_id_number)
    exists = session.execute(
        select(Candidate.candidate_id).where(Candidate.resident_id_number == resident_id_number)
    ).first()
    if exists:
        raise Conflict("already_registered", "A candidate with this resident ID number is already registered.")
    candidate = Candidate(
        candidate_id=str(uuid.uuid4()),
        full_name=full_name,
        resident_id_number=resident_id_number,
        mobile=mobile,
        exam_region=exam_region,
        password_hash=password_hasher.hash(request.password),
        status="pre_registered",
        registered_at=utcnow(),
    )
    session.add(candidate)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict("already_registered",
                       "A candidate with this resident ID number is already registered.") from None
    outbox.add(
        session,
        CandidateRegisteredV1(candidate_id=candidate.candidate_id, exam_region=exam_region,
                              registered_at=candidate.registered_at),
        subject=candidate.candidate_id,
    )
    return candidate_view(candidate)


def get_candidate(session: Session, candidate_id: str, for_update: bool = False) -> Candidate:
    candidate = session.get(Candidate, candidate_id, with_for_update=for_update)
    if candidate is None:
        raise NotFound("candidate_not_found", "No such candidate.")
    return candidate


def confirm_identity(session: Session, candidate_id: str, method: str, verifier) -> CandidateView:
    # Locked: a double click must not hand one candidate two ticket numbers.
    candidate = get_candidate(session, candidate_id, for_update=True)
    if candidate.status == "confirmed":
        return candidate_view(candidate)  # a second click shows the same ticket number
    verifier.verify(candidate.full_name, candidate.resident_id_number)
    now = utcnow()
    year = now.year
    serial = next_value(session, NumberSequence, domain.ticket_sequence_name(candidate.exam_region, year))
    candidate.ticket_number = domain.format_ticket_number(candidate.exam_region, year, serial)
    candidate.status = "confirmed"
    candidate.confirmation_method = method
    candidate.confirmed_at = now
    outbox.add(
        session,
        CandidateConfirmedV1(
            candidate_id=candidate.candidate_id,
            ticket_number=candidate.ticket_number,
            full_name=candidate.full_name,
            resident_id_number_masked=mask_resident_id(candidate.resident_id_number),
            exam_region=candidate.exam_region,
            method=method,
            confirmed_at=now,
        ),
        subject=candidate.candidate_id,
    )
    return candidate_view(candidate)


def _verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return password_hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except VerificationError:
        return False


def authenticate_candidate(session: Session, resident_id_number: str, password: str) -> AuthenticatedPrincipal:
    candidate = session.execute(
        select(Candidate).where(Candidate.resident_id_number == resident_id_number.strip().upper())
    ).scalar_one_or_none()
    if not _verify_password(candidate.password_hash if candidate else None, password):
        raise Unauthorized("invalid_credentials", "The ID number or password is wrong.")
    return AuthenticatedPrincipal(subject=candidate.candidate_id, role="candidate",
                                  display_name=candidate.full_name)


def ensure_bootstrap_staff(session: Session, username: str | None, password: str | None) -> None:
    """The first staff account comes from the environment so that a new deployment can sign in."""
    if not username or not password or session.get(StaffAccount, username) is not None:
        return
    session.add(StaffAccount(username=username, display_name=username,
                             password_hash=password_hasher.hash(password), created_at=utcnow()))


def authenticate_staff(session: Session, username: str, password: str) -> AuthenticatedPrincipal:
    account = session.get(StaffAccount, username)
    if not _verify_password(account.password_hash if account else None, password):
        raise Unauthorized("invalid_credentials", "The username or password is wrong.")
    return AuthenticatedPrincipal(subject=f"staff:{account.username}", role="staff",
                                  display_name=account.display_name)
