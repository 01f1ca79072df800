"""Training institutions and their staff accounts."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import Conflict
from credence_common.contracts.identity import (
    AuthenticatedPrincipal,
    CandidateList,
    CreateInstitution,
    InstitutionView,
)
from services.identity import usecases
from services.identity.adapters.protection import PersonalDataProtection
from services.identity.domain import passwords
from services.identity.models import Candidate, Institution, InstitutionAccount
from services.identity.usecases.access import institution_of, institution_subject


def create_institution(session: Session, request: CreateInstitution, now: datetime | None = None) -> InstitutionView:
    now = now or utcnow()
    passwords.check_password(request.admin_password, personal_values=(request.admin_username,))
    if session.execute(select(Institution.institution_id).where(Institution.name == request.name)).first():
        raise Conflict("institution_exists", "An institution with this name already exists.")
    if session.get(InstitutionAccount, request.admin_username) is not None:
        raise Conflict("username_taken", "This username is taken; choose another.")
    institution = Institution(institution_id=str(uuid.uuid4()), name=request.name, created_at=now)
    session.add(institution)
    session.flush()
    session.add(InstitutionAccount(username=request.admin_username, institution_id=institution.institution_id,
                                   display_name=request.admin_username,
                                   password_hash=passwords.hash_password(request.admin_password), created_at=now))
    return InstitutionView(institution_id=institution.institution_id, name=institution.name,
                           admin_username=request.admin_username)


def authenticate(session: Session, protection: PersonalDataProtection, username: str, password: str,
                 client_address: str | None = None,
                 now: datetime | None = None) -> AuthenticatedPrincipal:
    now = now or utcnow()
    account = session.get(InstitutionAccount, username)
    usecases.check_secret(session, protection, "institution-login", username, client_address or "unknown",
                          account.password_hash if account else None, password, now,
                          "The username or password is wrong.")
    subject = institution_subject(username)
    return AuthenticatedPrincipal(subject=subject, role="institution", display_name=account.display_name,
                                  institution_id=account.institution_id,
                                  refresh_token=usecases.issue_refresh_token(session, protection, subject,
                                                                              "institution", now))


def students(session: Session, actor) -> CandidateList:
    institution_id = institution_of(session, actor)
    rows = session.scalars(select(Candidate).where(Candidate.institution_id == institution_id)
                           .order_by(Candidate.registered_at)).all()
    return CandidateList(candidates=[usecases.candidate_view(c) for c in rows])
