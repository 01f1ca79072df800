"""Certificates service layer."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from credence_common.certificate_numbers import format_certificate_number
from credence_common.contracts.certificates import CertificateList, CertificateView
from credence_common.contracts.events import (
    CandidateQualifiedV1,
    CertificateAwaitingPaymentV1,
    CertificateIssuedV1,
    PaymentSucceededV1,
)
from credence_common.events import utcnow
from credence_common.messaging import Outbox
from credence_common.sequences import next_value
from services.certificates import domain
from services.certificates.models import Certificate, NumberSequence, OutboxEvent

log = logging.getLogger(__name__)
outbox = Outbox(OutboxEvent)


def certificate_view(certificate: Certificate) -> CertificateView:
    return CertificateView.model_validate(certificate, from_attributes=True)


def create_for_qualified_candidate(session: Session, event: CandidateQualifiedV1,
                                   fee_fen: int = domain.CERTIFICATE_FEE_FEN) -> None:
    if session.execute(select(Certificate.certificate_id).where(Certificate.result_id == event.result_id)).first():
        return  # one certificate per qualifying result, however often the event comes
    payer_kind = "candidate"
    now = utcnow()
    certificate = Certificate(
        certificate_id=str(uuid.uuid4()), result_id=event.result_id, candidate_id=event.candidate_id,
        ticket_number=event.ticket_number, holder_name=event.full_name,
        resident_id_number_masked=event.resident_id_number_masked, program_code=event.program_code,
        program_name=event.program_name, sitting=event.sitting, status=domain.initial_status(payer_kind),
        payer_kind=payer_kind, payer_id=event.candidate_id, certificate_fee_fen=fee_fen, created_at=now,
    )
    session.add(certificate)
    outbox.add(session, CertificateAwaitingPaymentV1(
        certificate_id=certificate.certificate_id, candidate_id=certificate.candidate_id,
        payer_kind=payer_kind, payer_id=certificate.payer_id, certificate_fee_fen=fee_fen,
        program_code=certificate.program_code, created_at=now), subject=certificate.certificate_id)


def issue_on_payment(session: Session, event: PaymentSucceededV1) -> None:
    if event.purpose != "certificate_fee":
        return
    certificate = session.get(Certificate, event.reference_id, with_for_update=True)
    if certificate is None:
        log.error("payment %s names unknown certificate %s", event.order_number, event.reference_id)
        return
    if not domain.may_issue(certificate.status):
        log.warning("payment %s does not issue certificate %s (status %s)", event.order_number,
                    certificate.certificate_id, certificate.status)
        return
    now = utcnow()
    region = certificate.ticket_number[:2]
    serial = next_value(session, NumberSequence, domain.serial_sequence_name(now.year, region))
    certificate.certificate_number = format_certificate_number(now.year, region, serial)
    certificate.status = "issued"
    certificate.issued_at = now
    certificate.payment_order_number = event.order_number
    certificate.certificate_fee_fen = event.amount_fen  # what was paid, at the price payments' schedule set
    outbox.add(session, CertificateIssuedV1(
        certificate_id=certificate.certificate_id, certificate_number=certificate.certificate_number,
        candidate_id=certificate.candidate_id, ticket_number=certificate.ticket_number,
        holder_name=certificate.holder_name, resident_id_number_masked=certificate.resident_id_number_masked,
        program_code=certificate.program_code, program_name=certificate.program_name,
        issued_on=now.date(), issued_at=now), subject=certificate.certificate_number)


def certificates_for_candidate(session: Session, candidate_id: str) -> CertificateList:
    rows = session.scalars(
        select(Certificate).where(Certificate.candidate_id == candidate_id).order_by(Certificate.created_at)
    ).all()
    return CertificateList(certificates=[certificate_view(c) for c in rows])
