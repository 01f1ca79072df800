"""The identity service's own tables. Resident ID numbers, mobiles and emails are stored encrypted
(``*_encrypted``, with the key id inside the token so keys can rotate), found through keyed blind
indexes (``*_index``), and shown through the stored masked form (``*_masked``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from credence_common.persistence.messaging import messaging_models
from credence_common.persistence.sequences import sequence_model
from credence_common.persistence.types import UTCDateTime


class Base(DeclarativeBase):
    pass


OutboxEvent, ProcessedEvent = messaging_models(Base)
NumberSequence = sequence_model(Base)


class Institution(Base):
    """A training institution (助学单位): it registers and may pay for its students, and its staff
    confirm their own students' identity."""

    __tablename__ = "institutions"

    institution_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class InstitutionAccount(Base):
    __tablename__ = "institution_accounts"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    institution_id: Mapped[str] = mapped_column(ForeignKey("institutions.institution_id"), nullable=False, index=True)
    display_name: Mapped[str] = mapped_column(String(80), nullable=False)
    password_hash: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class Candidate(Base):
    __tablename__ = "candidates"

    candidate_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    full_name: Mapped[str] = mapped_column(String(40), nullable=False)
    resident_id_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    resident_id_index: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    resident_id_masked: Mapped[str] = mapped_column(String(18), nullable=False)
    mobile_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    mobile_index: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    mobile_masked: Mapped[str] = mapped_column(String(11), nullable=False)
    email_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    email_index: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    email_masked: Mapped[str] = mapped_column(String(320), nullable=False)
    exam_region: Mapped[str] = mapped_column(String(2), nullable=False)
    password_hash: Mapped[str] = mapped_column(String(200), nullable=False)
    security_question: Mapped[str | None] = mapped_column(String(200), nullable=True)
    security_answer_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    rejection_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    ticket_number: Mapped[str | None] = mapped_column(String(12), unique=True, nullable=True)
    confirmation_method: Mapped[str | None] = mapped_column(String(12), nullable=True)
    institution_id: Mapped[str | None] = mapped_column(ForeignKey("institutions.institution_id"), nullable=True,
                                                       index=True)
    prior_education_status: Mapped[str] = mapped_column(String(20), nullable=False, default="not_required",
                                                        server_default="not_required")
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LegacyTicket(Base):
    """Admission ticket numbers issued before this platform (imported by staff). A confirmed candidate
    with the same resident ID number holds them; they may pick one as primary and merge the others."""

    __tablename__ = "legacy_tickets"

    ticket_number: Mapped[str] = mapped_column(String(12), primary_key=True)
    resident_id_index: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    exam_region: Mapped[str] = mapped_column(String(2), nullable=False)
    candidate_id: Mapped[str | None] = mapped_column(ForeignKey("candidates.candidate_id"), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(12), nullable=False)  # unclaimed | held | merged
    merged_into: Mapped[str | None] = mapped_column(String(12), nullable=True)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class PriorEducationCheck(Base):
    """Degree-upgrade candidates (专升本) must hold a prior degree; checked against the degree registry,
    or by staff from an uploaded proof when the registry has no record."""

    __tablename__ = "prior_education_checks"

    check_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    candidate_id: Mapped[str] = mapped_column(ForeignKey("candidates.candidate_id"), nullable=False, index=True)
    certificate_number_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    registry_name: Mapped[str] = mapped_column(String(40), nullable=False)
    registry_result: Mapped[str] = mapped_column(String(20), nullable=False)  # found | not_found
    proof_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decision: Mapped[str | None] = mapped_column(String(10), nullable=True)  # approved | rejected
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class IdentityConfirmation(Base):
    """Every confirmation attempt with its evidence references and the verdict: the audit trail."""

    __tablename__ = "identity_confirmations"

    confirmation_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    candidate_id: Mapped[str] = mapped_column(ForeignKey("candidates.candidate_id"), nullable=False, index=True)
    method: Mapped[str] = mapped_column(String(10), nullable=False)
    id_card_image_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    liveness_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    face_match_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    verifier: Mapped[str] = mapped_column(String(60), nullable=False)
    decision: Mapped[str] = mapped_column(String(10), nullable=False)
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_by: Mapped[str] = mapped_column(String(80), nullable=False)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class IdentityLivenessSession(Base):
    """A vendor's liveness session (Tencent Cloud FaceID's BizToken) opened for one candidate: its result is
    believed only for that candidate, and gives at most one decision. The BizToken is stored encrypted (it reads the
    candidate's result at the vendor) and found through a keyed index."""

    __tablename__ = "identity_liveness_sessions"

    session_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    candidate_id: Mapped[str] = mapped_column(ForeignKey("candidates.candidate_id"), nullable=False, index=True)
    verifier: Mapped[str] = mapped_column(String(40), nullable=False)
    biz_token_index: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    biz_token_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    # open | approved | rejected | inconclusive | expired
    status: Mapped[str] = mapped_column(String(12), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class OneTimeCode(Base):
    __tablename__ = "one_time_codes"

    code_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    mobile_index: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    client_index: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    purpose: Mapped[str] = mapped_column(String(20), nullable=False)
    code_digest: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    wrong_tries: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class DevSmsMessage(Base):
    """What the development SMS adapter 'sent': read by tests and ``make demo``; unused in production."""

    __tablename__ = "dev_sms_messages"

    message_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mobile_index: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    body: Mapped[str] = mapped_column(String(500), nullable=False)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class SmsQueue(Base):
    """Texts waiting for the SMS gateway. Sending happens after commit, off the request path, so a
    request for a registered number takes as long as one for an unknown number."""

    __tablename__ = "sms_queue"

    message_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mobile_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    text_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    state: Mapped[str] = mapped_column(String(10), nullable=False, default="pending")  # pending|sent|expired|failed
    # A vendor that sends only approved templates (SMS_ADAPTER=tencent_sms) needs what the text is for and the
    # values of its template, not the rendered text: both kept, the values encrypted like the text (they hold the
    # code) and emptied once the text is sent or given up. None on texts queued before revision 0007.
    purpose: Mapped[str | None] = mapped_column(String(20), nullable=True)
    params_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    serial_no: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)  # the vendor's SerialNo
    last_error: Mapped[str | None] = mapped_column(String(80), nullable=True)  # a vendor's code, never a number


class SmsReceipt(Base):
    """What the vendor says became of a sent text (its delivery receipt), by the SerialNo it gave at sending. A
    table of its own because a receipt may be pulled before the sending replica has recorded the SerialNo."""

    __tablename__ = "sms_receipts"

    serial_no: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(10), nullable=False)  # delivered|failed
    description: Mapped[str] = mapped_column(String(100), nullable=False, default="")  # the carrier's report
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # on the phone, per vendor
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class LoginThrottle(Base):
    """Failed sign-ins per login name, kept the same way whether or not the account exists, so the
    lockout itself does not reveal which names are registered."""

    __tablename__ = "login_throttle"

    login_index: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    token_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject: Mapped[str] = mapped_column(String(80), nullable=False, index=True)
    role: Mapped[str] = mapped_column(String(12), nullable=False)
    token_digest: Mapped[str] = mapped_column(String(64), nullable=False)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class StaffAccount(Base):
    __tablename__ = "staff_accounts"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(80), nullable=False)
    password_hash: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    # the account's staff roles, comma-separated in the order of credence_common/contracts/staff_roles.py ("" = none: it
    # signs in and may do nothing); changed only by an admin, each change in staff_role_changes
    roles: Mapped[str] = mapped_column(String(200), nullable=False, default="", server_default="")


class StaffRoleChange(Base):
    """Append-only: every assignment of staff roles (an account created with roles, an admin's change), who made
    it, what the account held before and after, and why."""

    __tablename__ = "staff_role_changes"

    change_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(ForeignKey("staff_accounts.username"), nullable=False, index=True)
    changed_by: Mapped[str] = mapped_column(String(80), nullable=False)
    roles_before: Mapped[str] = mapped_column(String(200), nullable=False)
    roles_after: Mapped[str] = mapped_column(String(200), nullable=False)
    reason: Mapped[str] = mapped_column(String(200), nullable=False)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
