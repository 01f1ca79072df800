from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from credence_common.persistence.messaging import messaging_models
from credence_common.persistence.types import UTCDateTime


class Base(DeclarativeBase):
    pass


OutboxEvent, ProcessedEvent = messaging_models(Base)


class VerifiableCertificate(Base):
    """The read model behind public checks, built only from ``certificate.issued`` events, so public
    verification keeps answering while the certificates service is down."""

    __tablename__ = "verifiable_certificates"

    certificate_number: Mapped[str] = mapped_column(String(15), primary_key=True)
    certificate_id: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    holder_name: Mapped[str] = mapped_column(String(40), nullable=False)
    # NFKC can expand one character into many (ﷺ -> 18 letters): no fixed width fits every name.
    holder_name_key: Mapped[str] = mapped_column(Text, nullable=False)
    resident_id_number_masked: Mapped[str] = mapped_column(String(18), nullable=False)
    program_code: Mapped[str] = mapped_column(String(32), nullable=False)
    program_name: Mapped[str] = mapped_column(String(120), nullable=False)
    issued_on: Mapped[date] = mapped_column(Date, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    sequence: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # the newest event applied
    candidate_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)  # the holder
    level: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # 缴费3个工作日后可查看证书验证报告: public checks answer at once, the holder's report opens on this day
    report_available_on: Mapped[date | None] = mapped_column(Date, nullable=True)


class VerificationReport(Base):
    """A signed report the holder asked for: the document as signed, and what has happened to it since.

    The report code opens the report, so it is a credential: it is shown once, when the report is made, and
    only its digest is kept (``report_id``, looked up by hashing the code presented; the column kept its name
    from before issue #17). The signed document is stored without its code and verify URL, which are put
    back when someone presents the code (usecases/reports.py: stored_without_code / with_code)."""

    __tablename__ = "verification_reports"

    report_id: Mapped[str] = mapped_column("report_code", String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), nullable=False, default="certificate",
                                      server_default="certificate")
    certificate_number: Mapped[str | None] = mapped_column(String(15), nullable=True, index=True)  # certificate kind
    candidate_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    # Education-record reports: the full name, shown only to a verifier the holder gave a share code.
    holder_name: Mapped[str | None] = mapped_column(String(40), nullable=True)
    signed_json: Mapped[str] = mapped_column(Text, nullable=False)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ReceivedEvent(Base):
    """Every certificate event applied to the read model, in the order applied: what a rebuild replays."""

    __tablename__ = "received_events"

    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    event_type: Mapped[str] = mapped_column(String(120), nullable=False)
    envelope_json: Mapped[str] = mapped_column(Text, nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class CheckLogEntry(Base):
    """Every public check, for audit, for the per-number limit and for the holder's access log. The name asked
    for is not kept; the caller's address is cut to its network after 30 days and the row deleted later
    (usecases.apply_retention). Who checks and why: what the verifier chose to say, if anything."""

    __tablename__ = "check_log"
    __table_args__ = (Index("ix_check_log_number_time", "certificate_number", "checked_at"),
                      Index("ix_check_log_checked_at", "checked_at"))  # the retention job selects by age

    check_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    certificate_number: Mapped[str] = mapped_column(String(40), nullable=False)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    client: Mapped[str] = mapped_column(String(64), nullable=False)
    organisation: Mapped[str | None] = mapped_column(String(100), nullable=True)
    purpose: Mapped[str | None] = mapped_column(String(200), nullable=True)


class ShareCode(Base):
    """A one-time code the holder hands an employer: it opens the full report once, for a limited time. Only
    its digest is kept, so the table cannot be read back into working codes."""

    __tablename__ = "share_codes"

    share_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    code_digest: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    report_id: Mapped[str] = mapped_column("report_code", String(32), nullable=False, index=True)  # the digest
    candidate_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    # The report code, encrypted under a key derived from this share code: only the verifier presenting the
    # share code can recover it (to put the code back into the signed document). Empty for codes made before.
    sealed_report_code: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ReportAccess(Base):
    """Someone opened a holder's report: by its code, by its QR code, or in full with a share code (then with
    who they said they are and why), when, from where, and what it answered. The holder sees it (the address
    masked); the address is cut to its network after 30 days and the row deleted later, as the check log's."""

    __tablename__ = "report_accesses"
    __table_args__ = (Index("ix_report_accesses_accessed_at", "accessed_at"),)  # the retention job selects by age

    access_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    candidate_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    report_id: Mapped[str] = mapped_column("report_code", String(32), nullable=False)  # the code's digest
    certificate_number: Mapped[str | None] = mapped_column(String(15), nullable=True)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)  # report_code | report_qr | share_code
    client: Mapped[str] = mapped_column(String(64), nullable=False)  # the caller's address ("" unknown)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)  # the report's state when opened
    share_id: Mapped[str | None] = mapped_column(String(36), nullable=True)  # share_code only, as the three below
    verifier_name: Mapped[str | None] = mapped_column(String(60), nullable=True)
    organisation: Mapped[str | None] = mapped_column(String(100), nullable=True)
    purpose: Mapped[str | None] = mapped_column(String(200), nullable=True)
    accessed_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class RecordCorrection(Base):
    """When a candidate's released results were last corrected (from scoring's result_corrected events): an
    education-record report made before then may state an old score, and its page says so."""

    __tablename__ = "record_corrections"

    candidate_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    corrected_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
