"""What ends an issued certificate's validity, and what ends an application before issue (issue #19 item 2):
staff's revocation; a re-check that takes the qualification away (scoring's qualification_withdrawn.v1); the
certificate fee refunded in full (payments' payment_refunded.v1).

A re-check that removes the qualification withdraws an unissued certificate at once (its fee is no longer due)
and puts an issued one on staff's revocation queue with a deadline, or revokes it at once where the authority
configures ``REVOKE_ON_RESULT_CORRECTION=automatic``. A full refund of an issued certificate's fee revokes it:
the money went back, so the certificate goes too (a partial refund, such as a goodwill amount, does not)."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from credence_common.contracts.certificates import CertificateView, RevocationCaseList, RevocationCaseView
from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import Conflict, InvalidInput, NotFound
from credence_common.contracts.events import (
    CertificateRevokedV1,
    FeeNoLongerDueV1,
    PaymentRefundedV1,
    QualificationWithdrawnV1,
)
from services.certificates import domain
from services.certificates.models import (
    Certificate,
    ReplacementApplication,
    RevocationCase,
    WithdrawnQualification,
)
from services.certificates.usecases import (
    CertificateRules,
    _change,
    _end_application,
    _note,
    certificate_view,
    find_certificate,
    outbox,
)

log = logging.getLogger(__name__)

RESULT_CORRECTED_TEXT = "A re-check corrected the result this certificate rests on; the qualification no longer holds."


def revoke(session: Session, staff_id: str, certificate_id: str, reason: str) -> CertificateView:
    """Staff revoke an issued certificate with a reason."""
    certificate = find_certificate(session, certificate_id, lock=True)
    _revoke(session, certificate, reason, domain.REVOKED_BY_STAFF, f"staff:{staff_id}")
    return certificate_view(certificate)


def _revoke(session: Session, certificate: Certificate, reason: str, code: str, actor: str) -> None:
    """The one way a certificate is revoked: its open replacement application is void (a paid one refunded), and
    subscribers hear ``certificate.revoked.v1`` with the reason and its machine code."""
    _change(session, certificate, "revoke", actor, {"reason": reason, "code": code})
    now = utcnow()
    certificate.revoked_at, certificate.revocation_reason, certificate.revocation_code = now, reason[:200], code
    for case in session.scalars(select(RevocationCase).where(  # nothing is left to decide
            RevocationCase.certificate_id == certificate.certificate_id, RevocationCase.status == domain.CASE_OPEN)):
        case.status, case.decided_at, case.decided_by, case.note = domain.CASE_REVOKED, now, actor, reason[:200]
    for application in session.scalars(select(ReplacementApplication).where(
            ReplacementApplication.certificate_id == certificate.certificate_id,
            ReplacementApplication.status.in_(domain.APPLICATION_ACTIVE)).with_for_update()):
        _end_application(session, application, "void", "The certificate was revoked.", "certificate_revoked",
                         f"{application.kind} application void: the certificate was revoked")
    outbox.add(session, CertificateRevokedV1(
        certificate_id=certificate.certificate_id, certificate_number=certificate.certificate_number,
        candidate_id=certificate.candidate_id, reason=reason[:200], reason_code=code, revoked_at=now,
        sequence=certificate.version), subject=certificate.certificate_number)


# --- a re-check took the qualification away -------------------------------------------------------------

def _current(session: Session, certificate: Certificate) -> Certificate:
    """The certificate that carries this one's qualification today: a reissue or correction carries it on."""
    while certificate.status == domain.SUPERSEDED:
        successor = session.scalars(select(Certificate).where(
            Certificate.replaces_certificate_id == certificate.certificate_id).with_for_update()).first()
        if successor is None:
            break
        certificate = successor
    return certificate


def withdraw_qualification(session: Session, event: QualificationWithdrawnV1, rules: CertificateRules) -> None:
    # on record first, whatever follows: a qualification event that crosses this one finds it
    withdrawn = session.get(WithdrawnQualification, event.result_id, with_for_update=True)
    if withdrawn is None:
        session.add(WithdrawnQualification(qualification_id=event.result_id, withdrawn_at=event.withdrawn_at,
                                           review_id=event.review_id))
    elif event.withdrawn_at > withdrawn.withdrawn_at:
        withdrawn.withdrawn_at, withdrawn.review_id = event.withdrawn_at, event.review_id
    certificate = session.scalars(select(Certificate).where(Certificate.result_id == event.result_id)
                                  .with_for_update()).first()
    if certificate is None:  # the qualification is still on its way: it will not become a certificate
        log.info("qualification %s withdrawn before its certificate exists", event.result_id)
        return
    certificate = _current(session, certificate)
    actor = f"scoring:review:{event.review_id}"
    detail = {"code": domain.REVOKED_RESULT_CORRECTED, "corrected_result_id": event.corrected_result_id}
    if certificate.status in (domain.REVOKED, domain.WITHDRAWN, domain.SUPERSEDED):
        log.info("qualification %s withdrawn: certificate %s is already %s", event.result_id,
                 certificate.certificate_id, certificate.status)
        return
    if certificate.status != domain.ISSUED:
        was_due = certificate.status in domain.AWAITING_PAYMENT
        _change(session, certificate, "withdraw", actor, detail)
        if was_due:  # payments cancels the due; a payment still arriving is refunded (issue_on_payment)
            outbox.add(session, FeeNoLongerDueV1(
                certificate_id=certificate.certificate_id, candidate_id=certificate.candidate_id,
                purpose="certificate_fee", reference_id=certificate.certificate_id, reason="result_corrected",
                ended_at=utcnow()), subject=certificate.certificate_id)
        return
    if session.scalars(select(RevocationCase.case_id).where(
            RevocationCase.qualification_id == event.result_id,
            RevocationCase.certificate_id == certificate.certificate_id)).first() is not None:
        return  # the same withdrawal told twice (under another event id)
    now = utcnow()
    case = RevocationCase(case_id=str(uuid.uuid4()), certificate_id=certificate.certificate_id,
                          qualification_id=event.result_id, reason_code=domain.REVOKED_RESULT_CORRECTED,
                          review_id=event.review_id, corrected_result_id=event.corrected_result_id,
                          status=domain.CASE_OPEN, opened_at=now,
                          decide_by=now.date() + timedelta(days=rules.revocation_review_days))
    session.add(case)
    _note(session, certificate, "revocation_case_opened", actor, {**detail, "case_id": case.case_id})
    if rules.on_result_correction == "automatic":
        case.status, case.decided_at, case.decided_by = domain.CASE_REVOKED, now, "automatic"
        case.note = "Revoked automatically (REVOKE_ON_RESULT_CORRECTION=automatic)."
        _revoke(session, certificate, RESULT_CORRECTED_TEXT, domain.REVOKED_RESULT_CORRECTED, actor)


def case_view(case: RevocationCase, certificate_number: str | None, today) -> RevocationCaseView:
    view = RevocationCaseView.model_validate(case, from_attributes=True)
    view.certificate_number = certificate_number
    view.overdue = case.status == domain.CASE_OPEN and case.decide_by < today
    return view


def revocation_cases(session: Session, status: str | None = None, overdue_only: bool = False) -> RevocationCaseList:
    if status is not None and status not in (domain.CASE_OPEN, domain.CASE_REVOKED, domain.CASE_KEPT):
        raise InvalidInput("invalid_status", "status is open, revoked or kept.",
                           [{"field": "status", "message": "one of open, revoked, kept"}])
    query = (select(RevocationCase, Certificate.certificate_number)
             .join(Certificate, Certificate.certificate_id == RevocationCase.certificate_id)
             .order_by(RevocationCase.decide_by, RevocationCase.opened_at))
    today = utcnow().date()
    if overdue_only:
        query = query.where(RevocationCase.status == domain.CASE_OPEN, RevocationCase.decide_by < today)
    elif status:
        query = query.where(RevocationCase.status == status)
    return RevocationCaseList(cases=[case_view(case, number, today) for case, number in session.execute(query)])


def decide_revocation_case(session: Session, staff_id: str, case_id: str, decision: str,
                           note: str) -> RevocationCaseView:
    case = session.get(RevocationCase, case_id)
    if case is None:
        raise NotFound("case_not_found", f"No revocation case {case_id}.")
    # the certificate first, then the case: a revocation (which closes the certificate's cases) locks that way too
    certificate = _current(session, find_certificate(session, case.certificate_id, lock=True))
    case = session.get(RevocationCase, case_id, with_for_update=True, populate_existing=True)
    try:
        outcome = domain.decide_case(case.status, decision)
    except domain.IllegalTransition:
        raise Conflict("case_decided", f"This case was already decided ({case.status}).") from None
    if decision == "revoke":
        if certificate.status != domain.ISSUED:
            raise Conflict("illegal_transition", f"The certificate is {certificate.status} now; keep the case to "
                           "close it.")
        _revoke(session, certificate, note, domain.REVOKED_RESULT_CORRECTED, f"staff:{staff_id}")
    else:
        _note(session, certificate, "revocation_case_kept", f"staff:{staff_id}", {"case_id": case_id, "note": note})
    case.status, case.decided_at, case.decided_by, case.note = outcome, utcnow(), f"staff:{staff_id}", note
    return case_view(case, certificate.certificate_number, utcnow().date())


# --- the fee went back ------------------------------------------------------------------------------------

def revoke_on_refund(session: Session, event: PaymentRefundedV1) -> None:
    """A certificate fee refunded in full revokes the certificate that payment issued. Refunds certificates asked
    for itself (money for something no longer awaiting it) are of another order and leave the certificate alone."""
    for due in event.fully_refunded_dues:
        if due.purpose != "certificate_fee":
            continue
        certificate = session.get(Certificate, due.reference_id, with_for_update=True)
        if certificate is None or certificate.status != domain.ISSUED or \
                certificate.payment_order_number != event.order_number:
            continue
        _revoke(session, certificate, f"The certificate fee was refunded (refund {event.refund_number}).",
                domain.REVOKED_FEE_REFUNDED, f"payments:{event.refund_number}")
