"""The public event contract. Downstream systems subscribe to these; ``docs/events.md`` is generated
from this module (``python -m credence_common.contracts.docs``) and a test fails when they drift.

Personal data rule: no payload carries a full resident ID number or mobile number, only masked forms.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from credence_common.contracts.envelope import EventPayload


class CandidateRegisteredV1(EventPayload):
    event_type: ClassVar[str] = "credence.identity.candidate_registered.v1"
    publisher: ClassVar[str] = "identity"
    description: ClassVar[str] = "A candidate pre-registered under their real name (identity not yet confirmed)."

    candidate_id: str
    exam_region: str = Field(description="Two-digit exam region code")
    registered_at: datetime


class CandidateConfirmedV1(EventPayload):
    event_type: ClassVar[str] = "credence.identity.candidate_confirmed.v1"
    publisher: ClassVar[str] = "identity"
    description: ClassVar[str] = "A candidate's identity was confirmed and an admission ticket number issued."

    candidate_id: str
    # plain str, not contracts.tickets.TicketNumber: a stricter field on a published v1 event is a contract change
    # (docs/events.md, "Versioning"); producers have always sent that shape
    ticket_number: str
    full_name: str
    resident_id_number_masked: str
    exam_region: str
    method: Literal["online", "on_site"]
    confirmed_at: datetime
    institution_id: str | None = Field(default=None, description="The training institution that registered the "
                                       "candidate, which pays their certificate fee (代缴); absent: none")


class CandidateTransferredV1(EventPayload):
    event_type: ClassVar[str] = "credence.identity.candidate_transferred.v1"
    publisher: ClassVar[str] = "identity"
    description: ClassVar[str] = "A candidate's exam record moved to another exam region (转考)."

    transfer_id: str
    candidate_id: str
    from_region: str
    to_region: str
    reason: str
    transferred_at: datetime


class TicketsLinkedV1(EventPayload):
    event_type: ClassVar[str] = "credence.identity.tickets_linked.v1"
    publisher: ClassVar[str] = "identity"
    description: ClassVar[str] = ("Older admission ticket numbers were found to belong to a confirmed candidate; "
                                  "results recorded under them are that candidate's.")

    candidate_id: str
    primary_ticket_number: str
    ticket_numbers: list[str]
    full_name: str
    resident_id_number_masked: str
    linked_at: datetime


class TicketsMergedV1(EventPayload):
    event_type: ClassVar[str] = "credence.identity.tickets_merged.v1"
    publisher: ClassVar[str] = "identity"
    description: ClassVar[str] = ("A candidate merged other ticket numbers into their primary one; their results "
                                  "move to the primary number.")

    candidate_id: str
    primary_ticket_number: str
    merged_ticket_numbers: list[str]
    merged_at: datetime


class ResultPublishedV1(EventPayload):
    event_type: ClassVar[str] = "credence.scoring.result_published.v1"
    publisher: ClassVar[str] = "scoring"
    description: ClassVar[str] = "An exam result was released to the candidate (the embargo ended)."

    result_id: str
    candidate_id: str
    ticket_number: str
    program_code: str
    sitting: str = Field(description="Exam sitting, e.g. 2026-11")
    final_score: int = Field(ge=0, le=100)
    outcome: Literal["passed", "failed"]
    published_at: datetime


class ResultCorrectedV1(EventPayload):
    event_type: ClassVar[str] = "credence.scoring.result_corrected.v1"
    publisher: ClassVar[str] = "scoring"
    description: ClassVar[str] = "A published result was corrected after a score review (复查); the outcome may change."

    result_id: str
    review_id: str
    candidate_id: str
    ticket_number: str
    program_code: str
    course_code: str = Field(description="Empty for composite programs")
    sitting: str
    old_score: int = Field(ge=0, le=100)
    new_score: int = Field(ge=0, le=100)
    old_outcome: Literal["passed", "failed"]
    new_outcome: Literal["passed", "failed"]
    corrected_at: datetime


class CandidateQualifiedV1(EventPayload):
    event_type: ClassVar[str] = "credence.scoring.candidate_qualified.v1"
    publisher: ClassVar[str] = "scoring"
    description: ClassVar[str] = "A candidate passed a program and qualifies for its certificate."

    result_id: str
    candidate_id: str
    ticket_number: str
    full_name: str
    resident_id_number_masked: str
    program_code: str
    program_name: str
    sitting: str
    final_score: int = Field(ge=0, le=100)
    qualified_at: datetime
    level: str | None = Field(default=None, description="The qualification level printed on the certificate, "
                              "when the program has one")


class QualificationWithdrawnV1(EventPayload):
    event_type: ClassVar[str] = "credence.scoring.qualification_withdrawn.v1"
    publisher: ClassVar[str] = "scoring"
    description: ClassVar[str] = ("A re-check (复查) corrected a result so that the candidate no longer qualifies for "
                                  "a program they had qualified for (candidate_qualified.v1 with the same "
                                  "result_id). Certificates withdraws an unissued certificate and puts an issued one "
                                  "on staff's revocation queue.")

    result_id: str = Field(description="The qualification's id, as in candidate_qualified.v1: the result for a "
                           "composite program, the graduation's stable id for a course-based one")
    candidate_id: str
    program_code: str
    corrected_result_id: str = Field(description="The result the re-check corrected")
    review_id: str
    reason: Literal["result_corrected"] = "result_corrected"
    withdrawn_at: datetime


class CertificateAwaitingPaymentV1(EventPayload):
    event_type: ClassVar[str] = "credence.certificate.awaiting_payment.v1"
    publisher: ClassVar[str] = "certificates"
    description: ClassVar[str] = "A certificate was created and waits for its certificate fee."

    certificate_id: str
    candidate_id: str
    payer_kind: Literal["candidate", "institution"]
    payer_id: str
    certificate_fee_fen: int = Field(ge=0, description="Amount due in fen (1 yuan = 100 fen)")
    program_code: str
    created_at: datetime
    sequence: int | None = Field(default=None, ge=1, description="This certificate's version: increases with "
                                 "every change, so a subscriber can order its events (gaps are normal)")
    purpose: str = Field(default="certificate_fee", description="The fee code due: certificate_fee (events before "
                         "2026-12-07 also carried a replacement application's certificate_reissue / "
                         "certificate_correction here; certificate.replacement_awaiting_payment.v1 carries those now)")
    reference_id: str | None = Field(default=None, description="What the fee is for when it is not the certificate "
                                     "itself (only in events before 2026-12-07: the replacement application's id)")


class ReplacementAwaitingPaymentV1(EventPayload):
    event_type: ClassVar[str] = "credence.certificate.replacement_awaiting_payment.v1"
    publisher: ClassVar[str] = "certificates"
    description: ClassVar[str] = ("A candidate applied for a reissue (补办) or a correction-and-replacement (勘误更换) "
                                  "of an issued certificate; the application waits for its fee. The certificate "
                                  "itself stays issued (until 2026-12-07 this was sent as certificate.awaiting_payment "
                                  "with a replacement purpose).")

    application_id: str
    certificate_id: str = Field(description="The issued certificate to be replaced")
    certificate_number: str
    candidate_id: str
    kind: Literal["reissue", "correction"]
    purpose: Literal["certificate_reissue", "certificate_correction"] = Field(description="The fee code due")
    payer_kind: Literal["candidate"] = "candidate"
    payer_id: str
    fee_fen: int = Field(ge=0, description="The fee shown to the candidate in fen; payments prices the due from "
                         "its fee schedule")
    created_at: datetime


class FeeNoLongerDueV1(EventPayload):
    event_type: ClassVar[str] = "credence.certificate.fee_no_longer_due.v1"
    publisher: ClassVar[str] = "certificates"
    description: ClassVar[str] = ("Something certificates asked a fee for ended before it was paid: a replacement "
                                  "application withdrawn by the candidate, cancelled by staff, or void because its "
                                  "certificate was revoked. Payments cancels the due and closes any open order "
                                  "holding it; a payment that still arrives is refunded "
                                  "(certificate.refund_requested).")

    certificate_id: str
    candidate_id: str
    purpose: str = Field(description="The fee code of the due, as in the event that asked for it")
    reference_id: str = Field(description="The due's reference: the application id, or the certificate id for a "
                              "certificate fee")
    reason: Literal["withdrawn_by_candidate", "cancelled_by_staff", "certificate_revoked", "result_corrected"]
    ended_at: datetime


class PaymentSucceededV1(EventPayload):
    event_type: ClassVar[str] = "credence.payments.payment_succeeded.v1"
    publisher: ClassVar[str] = "payments"
    description: ClassVar[str] = ("A due was paid (confirmed by a signed provider notification or the provider's "
                                  "query API). An order paying several dues (an institution paying for many "
                                  "candidates) emits one event per due.")

    order_number: str
    due_id: str | None = Field(default=None, description="The due paid (absent in events before 2026-11-23)")
    purpose: str = Field(description="Fee code from the fee schedule, e.g. certificate_fee")
    reference_id: str = Field(description="What was paid for: the certificate id for a certificate fee")
    candidate_id: str | None = Field(default=None, description="Whose due it was (absent before 2026-11-23)")
    payer_kind: Literal["candidate", "institution"]
    payer_id: str
    amount_fen: int = Field(ge=0, description="This due's amount in fen")
    order_amount_fen: int | None = Field(default=None, ge=0, description="The whole order's amount in fen "
                                         "(absent before 2026-11-23)")
    provider: str
    provider_transaction_id: str
    paid_at: datetime


class RefundedDue(BaseModel):
    purpose: str = Field(description="The due's fee code, e.g. certificate_fee")
    reference_id: str = Field(description="What the due was for: the certificate id for a certificate fee")


class PaymentRefundedV1(EventPayload):
    event_type: ClassVar[str] = "credence.payments.payment_refunded.v1"
    publisher: ClassVar[str] = "payments"
    description: ClassVar[str] = "Money went back to the payer along the original payment path (fully or partly)."

    refund_number: str
    order_number: str
    reference_id: str | None = Field(default=None, description="The due's reference the refund is for, if one")
    payer_kind: Literal["candidate", "institution"]
    payer_id: str
    amount_fen: int = Field(gt=0, description="This refund in fen")
    order_refunded_fen: int = Field(ge=0, description="All refunds of the order so far, in fen")
    fully_refunded: bool
    reason: str
    provider: str
    refunded_at: datetime
    fully_refunded_dues: list[RefundedDue] = Field(default_factory=list, description="The order's dues whose whole "
                                                   "amount has now been refunded (one student's fee out of an "
                                                   "institution's order, or every due of a fully refunded order); "
                                                   "absent before 2026-12-07")


class CertificateIssuedV1(EventPayload):
    event_type: ClassVar[str] = "credence.certificate.issued.v1"
    publisher: ClassVar[str] = "certificates"
    description: ClassVar[str] = "A certificate was issued with its certificate number and can be verified."

    certificate_id: str
    certificate_number: str
    candidate_id: str
    ticket_number: str
    holder_name: str
    resident_id_number_masked: str
    program_code: str
    program_name: str
    issued_on: date
    issued_at: datetime
    sequence: int | None = Field(default=None, ge=1, description="This certificate's version: increases with "
                                 "every change, so a subscriber can order its events (gaps are normal)")
    level: str | None = None
    qualified_on: date | None = None
    payer_kind: Literal["candidate", "institution"] | None = None
    report_available_on: date | None = Field(default=None, description="The online verification report opens "
                                             "on this day (working days after payment)")
    replaces_certificate_id: str | None = Field(default=None, description="For a reissue or correction: the "
                                                "certificate this one supersedes")


class CertificateRevokedV1(EventPayload):
    event_type: ClassVar[str] = "credence.certificate.revoked.v1"
    publisher: ClassVar[str] = "certificates"
    description: ClassVar[str] = ("An issued certificate was revoked (by staff, after a result correction, or because "
                                  "its fee was refunded in full); it no longer verifies as valid.")

    certificate_id: str
    certificate_number: str
    candidate_id: str
    reason: str
    reason_code: Literal["staff", "result_corrected", "fee_refunded"] = Field(
        default="staff", description="Why, for machines: staff's decision (reason says why), a re-check that "
        "removed the qualification, or the certificate fee refunded in full")
    revoked_at: datetime
    sequence: int = Field(ge=1, description="This certificate's version (see certificate.issued.v1)")


class CertificateSupersededV1(EventPayload):
    event_type: ClassVar[str] = "credence.certificate.superseded.v1"
    publisher: ClassVar[str] = "certificates"
    description: ClassVar[str] = ("A reissue or correction replaced an issued certificate with a new one (issued "
                                  "under its own number); the old one no longer verifies as valid.")

    certificate_id: str
    certificate_number: str
    candidate_id: str
    superseded_by_certificate_id: str
    superseded_by_certificate_number: str
    reason: Literal["reissue", "correction"]
    superseded_at: datetime
    sequence: int = Field(ge=1, description="This (old) certificate's version (see certificate.issued.v1)")


class CertificateRefundRequestedV1(EventPayload):
    event_type: ClassVar[str] = "credence.certificate.refund_requested.v1"
    publisher: ClassVar[str] = "certificates"
    description: ClassVar[str] = ("Certificates will not use money it was paid: a paid reissue or correction "
                                  "application was cancelled (staff, or the certificate was revoked), or a payment "
                                  "arrived for something no longer awaiting it. Payments refunds it along the "
                                  "original payment path, once per refund_request_id.")

    refund_request_id: str = Field(description="Stable per refund: a redelivered event asks for the same refund")
    certificate_id: str
    candidate_id: str
    reference_id: str = Field(description="What was paid for: the application id or the certificate id")
    order_number: str
    amount_fen: int = Field(gt=0)
    reason: str
    requested_at: datetime


ALL_EVENTS: tuple[type[EventPayload], ...] = (
    CandidateRegisteredV1,
    CandidateConfirmedV1,
    CandidateTransferredV1,
    TicketsLinkedV1,
    TicketsMergedV1,
    ResultPublishedV1,
    ResultCorrectedV1,
    CandidateQualifiedV1,
    QualificationWithdrawnV1,
    CertificateAwaitingPaymentV1,
    ReplacementAwaitingPaymentV1,
    FeeNoLongerDueV1,
    PaymentSucceededV1,
    PaymentRefundedV1,
    CertificateIssuedV1,
    CertificateRevokedV1,
    CertificateSupersededV1,
    CertificateRefundRequestedV1,
)

EVENTS_BY_TYPE = {model.event_type: model for model in ALL_EVENTS}
