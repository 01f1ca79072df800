from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from credence_common.persistence.messaging import messaging_models
from credence_common.persistence.sequences import sequence_model
from credence_common.persistence.types import UTCDateTime
from services.certificates.adapters.protection import Sealed


class Base(DeclarativeBase):
    pass


# Sealed envelopes: a certificate.issued event carries the holder's name, and published events are kept.
OutboxEvent, ProcessedEvent = messaging_models(Base, envelope_type=Sealed)
NumberSequence = sequence_model(Base)


class Certificate(Base):
    __tablename__ = "certificates"

    certificate_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    result_id: Mapped[str] = mapped_column(String(36), unique=True, nullable=False)
    candidate_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    ticket_number: Mapped[str] = mapped_column(String(12), nullable=False)
    # Personal data is Sealed (encrypted at rest, services/certificates/adapters/protection.py); the column names
    # say so.
    holder_name: Mapped[str] = mapped_column("holder_name_encrypted", Sealed(), nullable=False)
    resident_id_number_masked: Mapped[str] = mapped_column(String(18), nullable=False)
    program_code: Mapped[str] = mapped_column(String(32), nullable=False)
    program_name: Mapped[str] = mapped_column(String(120), nullable=False)
    sitting: Mapped[str] = mapped_column(String(7), nullable=False)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    payer_kind: Mapped[str] = mapped_column(String(12), nullable=False)
    payer_id: Mapped[str] = mapped_column(String(64), nullable=False)
    certificate_fee_fen: Mapped[int] = mapped_column(Integer, nullable=False)
    certificate_number: Mapped[str | None] = mapped_column(String(15), unique=True, nullable=True)
    payment_order_number: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    level: Mapped[str | None] = mapped_column(String(40), nullable=True)
    qualified_on: Mapped[date | None] = mapped_column(Date(), nullable=True)
    photo_reference: Mapped[str | None] = mapped_column("photo_reference_encrypted", Sealed(), nullable=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The online verification report opens this many working days after payment (REPORT_DELAY_WORKING_DAYS).
    report_available_on: Mapped[date | None] = mapped_column(Date(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revocation_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    revocation_code: Mapped[str | None] = mapped_column(String(20), nullable=True)  # domain.REVOKED_*
    # Raised on every change; events carry it as ``sequence`` so a subscriber can put them in order.
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    replaces_certificate_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    delivery_address: Mapped[str | None] = mapped_column("delivery_address_encrypted", Sealed(), nullable=True)
    delivery_status: Mapped[str] = mapped_column(String(12), nullable=False, default="none")
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("production_batches.batch_id"), nullable=True,
                                                 index=True)
    ship_by: Mapped[date | None] = mapped_column(Date(), nullable=True)
    courier: Mapped[str | None] = mapped_column(String(40), nullable=True)
    tracking_number: Mapped[str | None] = mapped_column(String(40), nullable=True)
    shipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ProductionBatch(Base):
    """Paid certificates wait in the open batch; staff close it and send it to the printer."""

    __tablename__ = "production_batches"

    batch_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    batch_number: Mapped[int] = mapped_column(Integer, nullable=False, unique=True)
    status: Mapped[str] = mapped_column(String(12), nullable=False)  # open | closed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(80), nullable=True)


class CandidatePayer(Base):
    """Who pays a candidate's certificate, learnt from identity's candidate_confirmed events."""

    __tablename__ = "candidate_payers"

    candidate_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    institution_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class CorrectionRequest(Base):
    """Before confirming, the candidate asks staff to correct what will be printed."""

    __tablename__ = "correction_requests"

    request_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    certificate_id: Mapped[str] = mapped_column(ForeignKey("certificates.certificate_id"), nullable=False,
                                                index=True)
    field: Mapped[str] = mapped_column(String(32), nullable=False)
    # a name or a photo reference (CORRECTABLE_FIELDS)
    current_value: Mapped[str | None] = mapped_column("current_value_encrypted", Sealed(), nullable=True)
    requested_value: Mapped[str] = mapped_column("requested_value_encrypted", Sealed(), nullable=False)
    reason: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[str] = mapped_column(String(12), nullable=False)  # open | accepted | rejected
    decided_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    decision_note: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class CertificateHistory(Base):
    """Every change to a certificate, in order: what its holder and staff see as its timeline."""

    __tablename__ = "certificate_history"

    certificate_id: Mapped[str] = mapped_column(ForeignKey("certificates.certificate_id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    actor: Mapped[str] = mapped_column(String(80), nullable=False)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)


class RevocationCase(Base):
    """An issued certificate whose qualification a re-check took away, waiting for staff to revoke or keep it."""

    __tablename__ = "revocation_cases"

    case_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    certificate_id: Mapped[str] = mapped_column(ForeignKey("certificates.certificate_id"), nullable=False,
                                                index=True)
    # one case per withdrawn qualification and certificate: a redelivered or repeated event finds it (a candidate
    # who qualifies again gets a new certificate, which a later withdrawal puts in a case of its own)
    qualification_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    reason_code: Mapped[str] = mapped_column(String(20), nullable=False)
    review_id: Mapped[str] = mapped_column(String(36), nullable=False)
    corrected_result_id: Mapped[str] = mapped_column(String(36), nullable=False)
    status: Mapped[str] = mapped_column(String(12), nullable=False, index=True)  # open | revoked | kept
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    decide_by: Mapped[date] = mapped_column(Date(), nullable=False)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    note: Mapped[str | None] = mapped_column(String(200), nullable=True)


class WithdrawnQualification(Base):
    """The last withdrawal of a qualification (scoring's qualification_withdrawn.v1), kept so that events may
    cross: a withdrawal that arrives before its qualification is not lost (the qualification, when it comes, is
    not turned into a certificate), and a qualification gained again later is told apart from a late copy."""

    __tablename__ = "withdrawn_qualifications"

    qualification_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    withdrawn_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    review_id: Mapped[str] = mapped_column(String(36), nullable=False)


class ReplacementApplication(Base):
    """A reissue (补办) or correction-and-replacement (勘误更换) of an issued certificate."""

    __tablename__ = "replacement_applications"

    application_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    certificate_id: Mapped[str] = mapped_column(ForeignKey("certificates.certificate_id"), nullable=False,
                                                index=True)
    candidate_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(12), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    reason: Mapped[str] = mapped_column(String(200), nullable=False)
    identity_video_reference: Mapped[str | None] = mapped_column("identity_video_reference_encrypted", Sealed(),
                                                                 nullable=True)
    corrected_holder_name: Mapped[str | None] = mapped_column("corrected_holder_name_encrypted", Sealed(),
                                                              nullable=True)
    fee_fen: Mapped[int | None] = mapped_column(Integer, nullable=True)
    payment_order_number: Mapped[str | None] = mapped_column(String(40), nullable=True)
    new_certificate_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    cancel_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    handled_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
