"""Who may see or act on a candidate's record, decided here in the service (the gateway checks roles
too, but a service never relies on that alone). See docs/access.md."""

from __future__ import annotations

from sqlalchemy.orm import Session

from credence_common.contracts.errors import Forbidden, NotFound
from credence_common.security.actors import Actor, as_actor, require_staff_role
from services.identity.models import Candidate, InstitutionAccount, StaffAccount

INSTITUTION_SUBJECT_PREFIX = "institution:"
STAFF_SUBJECT_PREFIX = "staff:"
# the staff role that sees and handles candidates' records (credence_common/contracts/staff_roles.py)
CANDIDATE_CASEWORK = ("support",)


def staff_subject(username: str) -> str:
    return f"{STAFF_SUBJECT_PREFIX}{username}"


def staff_account(session: Session, subject: str) -> StaffAccount | None:
    """The staff account a ``staff:<username>`` subject names, if it (still) exists."""
    if not subject.startswith(STAFF_SUBJECT_PREFIX):
        return None
    return session.get(StaffAccount, subject[len(STAFF_SUBJECT_PREFIX):])


def institution_subject(username: str) -> str:
    return f"{INSTITUTION_SUBJECT_PREFIX}{username}"


def institution_account(session: Session, subject: str) -> InstitutionAccount | None:
    """The institution account an ``institution:<username>`` subject names, if it (still) exists."""
    if not subject.startswith(INSTITUTION_SUBJECT_PREFIX):
        return None
    return session.get(InstitutionAccount, subject[len(INSTITUTION_SUBJECT_PREFIX):])


def institution_of(session: Session, actor: Actor) -> str:
    """The institution an institution account belongs to."""
    if actor.role != "institution" or not actor.subject.startswith(INSTITUTION_SUBJECT_PREFIX):
        raise Forbidden("forbidden", "Only a training institution's staff may do this.")
    account = institution_account(session, actor.subject)
    if account is None:
        raise Forbidden("forbidden", "This institution account no longer exists.")
    return account.institution_id


def visible_candidate(session: Session, actor: str | Actor | None, candidate_id: str) -> Candidate:
    """The candidate, if this actor may see them. An unknown id looks exactly like someone else's record
    to everyone but staff, so ids cannot be probed. Staff need the ``support`` role."""
    actor = as_actor(actor)
    if actor.role == "staff":
        require_staff_role(actor, CANDIDATE_CASEWORK)
    candidate = session.get(Candidate, candidate_id)
    if candidate is None:
        if actor.role == "staff":
            raise NotFound("candidate_not_found", "No such candidate.")
        raise Forbidden("forbidden", "You may only see and change records you are responsible for.")
    authorize(session, actor, candidate)
    return candidate


def authorize(session: Session, actor: str | Actor | None, candidate: Candidate) -> Actor:
    """Staff with the ``support`` role: anyone. A candidate: themselves. An institution: its own students."""
    actor = as_actor(actor)
    if actor.role == "staff":
        return require_staff_role(actor, CANDIDATE_CASEWORK)
    if actor.role == "candidate" and actor.subject == candidate.candidate_id:
        return actor
    if actor.role == "institution" and candidate.institution_id == institution_of(session, actor):
        return actor
    raise Forbidden("forbidden", "You may only see and change records you are responsible for.")
