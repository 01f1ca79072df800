"""Prior-education check for degree-upgrade candidates, against a degree registry adapter modelled on
CHSI's record look-up; when the registry has no record, staff decide from an uploaded proof.

``DEGREE_REGISTRY``: ``sandbox`` (development and staging) or ``http``, an authority's registry speaking
docs/degree-registry-contract.md (services/identity/adapters/degree_registry.py)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import Conflict, InvalidInput, ServiceUnavailable
from credence_common.contracts.identity import CandidateView, PriorEducationView
from credence_common.persistence.idempotency import forget_attempt
from services.identity.adapters.degree_registry import RegistryAnswer
from services.identity.adapters.protection import PersonalDataProtection
from services.identity.models import PriorEducationCheck
from services.identity.usecases import candidate_view, get_candidate


def _latest(session: Session, candidate_id: str) -> PriorEducationCheck | None:
    return session.scalars(select(PriorEducationCheck).where(PriorEducationCheck.candidate_id == candidate_id)
                           .order_by(PriorEducationCheck.created_at.desc()).limit(1)).first()


def holder(session: Session, protection: PersonalDataProtection, candidate_id: str) -> tuple[str, str]:
    """The name and resident ID number the registry is asked about, for a candidate whose check is pending."""
    candidate = get_candidate(session, candidate_id)
    _require_pending(candidate)
    return candidate.full_name, protection.decrypt(candidate.resident_id_encrypted)


def record(session: Session, protection: PersonalDataProtection, candidate_id: str, certificate_number: str,
           answer: RegistryAnswer, now: datetime | None = None) -> CandidateView:
    """The registry's answer, found or not found. The service asks the registry between ``holder`` and this, in two
    transactions, so that a slow registry holds no database connection or row lock. When the registry cannot
    answer (ServiceUnavailable: down, breaker open, an answer we cannot believe) this does not run: nothing is
    recorded and the status stays as it was, so an outage never reads as "not found"."""
    candidate = get_candidate(session, candidate_id, for_update=True)
    _require_pending(candidate)  # a check that finished meanwhile (a double submit) wins
    session.add(PriorEducationCheck(check_id=str(uuid.uuid4()), candidate_id=candidate_id,
                                    certificate_number_encrypted=protection.encrypt(certificate_number),
                                    registry_name=answer.registry,
                                    registry_result="found" if answer.found else "not_found",
                                    created_at=now or utcnow()))
    candidate.prior_education_status = "verified" if answer.found else "proof_required"
    return candidate_view(candidate)


def _require_pending(candidate) -> None:
    if candidate.prior_education_status in ("not_required", "verified"):
        raise Conflict("prior_education_not_pending", "No prior-education check is pending for this candidate.")


def submit_proof(session: Session, candidate_id: str, proof_ref: str) -> CandidateView:
    candidate = get_candidate(session, candidate_id, for_update=True)
    check = _latest(session, candidate_id)
    if candidate.prior_education_status not in ("proof_required", "rejected") or check is None:
        raise Conflict("proof_not_requested", "A proof is needed only after the registry could not find the degree.")
    check.proof_ref = proof_ref
    check.decision = check.reason = check.decided_by = check.decided_at = None
    candidate.prior_education_status = "proof_submitted"
    return candidate_view(candidate)


def decide(session: Session, candidate_id: str, staff_subject: str, approve: bool, reason: str | None,
           now: datetime | None = None) -> CandidateView:
    candidate = get_candidate(session, candidate_id, for_update=True)
    check = _latest(session, candidate_id)
    if candidate.prior_education_status != "proof_submitted" or check is None:
        raise Conflict("no_proof_to_decide", "There is no submitted proof waiting for a decision.")
    if not approve and not reason:
        raise InvalidInput("reason_required", "Say why the proof is rejected; the candidate will see it.",
                           [{"field": "reason", "message": "required when rejecting"}])
    check.decision = "approved" if approve else "rejected"
    check.reason, check.decided_by, check.decided_at = reason, staff_subject, now or utcnow()
    candidate.prior_education_status = "verified" if approve else "rejected"
    return candidate_view(candidate)


def view(session: Session, candidate_id: str) -> PriorEducationView:
    candidate = get_candidate(session, candidate_id)
    check = _latest(session, candidate_id)
    return PriorEducationView(candidate_id=candidate_id, status=candidate.prior_education_status,
                              registry_result=check.registry_result if check else None,
                              proof_ref=check.proof_ref if check else None, decision=check.decision if check else None,
                              reason=check.reason if check else None, checked_at=check.created_at if check else None)


def submit(db, protection: PersonalDataProtection, registry, candidate_id: str,
           certificate_number: str) -> CandidateView:
    """The candidate's degree certificate number, checked at the registry. Takes the unit of work (``db``), not a
    session: the registry is asked between two transactions, so a slow or failing registry (up to its timeout ×
    attempts) holds no database connection and no lock, and its 503 leaves nothing written (``record``)."""
    with db.transaction() as session:
        full_name, resident_id_number = holder(session, protection, candidate_id)
    try:
        answer = registry.look_up(full_name, resident_id_number, certificate_number)
    except ServiceUnavailable:
        forget_attempt(db)  # an outage is no answer to replay for a day: a retry asks the registry again
        raise
    with db.transaction() as session:
        return record(session, protection, candidate_id, certificate_number, answer)
