"""Verification service layer."""

from __future__ import annotations

from sqlalchemy.orm import Session

from credence_common.certificate_numbers import normalise_certificate_number
from credence_common.contracts.events import CertificateIssuedV1, CertificateRevokedV1, CertificateSupersededV1
from credence_common.contracts.verification import PublicCheck, PublicCheckResult, VerifiedCertificate
from credence_common.errors import InvalidInput, NotFound
from credence_common.events import utcnow
from credence_common.masking import mask_name
from services.verification import domain
from services.verification.models import VerifiableCertificate


def record_issued_certificate(session: Session, event: CertificateIssuedV1) -> None:
    row = session.get(VerifiableCertificate, event.certificate_number)
    if row is None:
        row = VerifiableCertificate(certificate_number=event.certificate_number)
        session.add(row)
    row.certificate_id = event.certificate_id
    row.holder_name = event.holder_name
    row.holder_name_key = domain.name_key(event.holder_name)
    row.resident_id_number_masked = event.resident_id_number_masked
    row.program_code = event.program_code
    row.program_name = event.program_name
    row.issued_on = event.issued_on
    if row.status not in ("revoked", "superseded"):  # a redelivered issue never brings a withdrawn one back
        row.status = "valid"
    row.updated_at = utcnow()


def record_superseded_certificate(session: Session, event: CertificateSupersededV1) -> None:
    _withdraw(session, event.certificate_number, "superseded")


def record_revoked_certificate(session: Session, event: CertificateRevokedV1) -> None:
    _withdraw(session, event.certificate_number, "revoked")


def _withdraw(session: Session, certificate_number: str, status: str) -> None:
    row = session.get(VerifiableCertificate, certificate_number)
    if row is None:
        # Events crossed (two workers, a redelivery): the issue is still on its way. Refuse, so the message
        # goes back to the queue and is applied after the issue event.
        raise RuntimeError(f"{status} {certificate_number} arrived before its issue; retried later")
    row.status = status
    row.updated_at = utcnow()


def public_check(session: Session, check: PublicCheck) -> PublicCheckResult:
    number = normalise_certificate_number(check.certificate_number)
    if number is None:
        raise InvalidInput("invalid_certificate_number",
                           "A certificate number has 15 digits and its last digit is a check digit; "
                           "please check for a typing mistake.",
                           [{"field": "certificate_number", "message": "not a valid certificate number"}])
    row = session.get(VerifiableCertificate, number)
    # The same answer for a wrong name as for an unknown number: a check must not reveal whose
    # number it is.
    if row is None or row.holder_name_key != domain.name_key(check.holder_name) or row.status != "valid":
        raise NotFound("certificate_not_found", "No valid certificate matches this holder name and number.")
    return PublicCheckResult(result="valid", certificate=VerifiedCertificate(
        certificate_number=row.certificate_number, holder_name_masked=mask_name(row.holder_name),
        resident_id_number_masked=row.resident_id_number_masked, program_code=row.program_code,
        program_name=row.program_name, issued_on=row.issued_on))
