"""RPC and HTTP schemas of the certificates service."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from credence_common.contracts.tickets import TicketNumber

CertificateStatus = Literal["pending_confirmation", "correction_requested", "awaiting_candidate_payment",
                            "awaiting_institution_payment", "issued", "revoked", "superseded", "withdrawn"]


class CertificateView(BaseModel):
    certificate_id: str
    certificate_number: str | None
    status: CertificateStatus
    holder_name: str
    resident_id_number_masked: str
    ticket_number: TicketNumber
    program_code: str
    program_name: str
    level: str | None = None
    qualified_on: date | None = None
    photo_reference: str | None = None
    sitting: str
    certificate_fee_fen: int
    payer_kind: Literal["candidate", "institution"]
    created_at: datetime
    confirmed_at: datetime | None = None
    issued_at: datetime | None = None
    report_available_on: date | None = None
    revoked_at: datetime | None = None
    revocation_reason: str | None = None
    revocation_code: Literal["staff", "result_corrected", "fee_refunded"] | None = Field(
        default=None, description="Why it was revoked, for machines: staff, result_corrected (a re-check took the "
        "qualification away) or fee_refunded (its fee was refunded in full)")
    version: int
    delivery_status: Literal["none", "queued", "printing", "shipped", "delivered"] = "none"
    delivery_address: str | None = None
    batch_id: str | None = None
    ship_by: date | None = Field(default=None, description="Shipping is promised by this day: "
                                                           "SHIPPING_PROMISE_WORKING_DAYS working days after issue")
    courier: str | None = None
    tracking_number: str | None = None
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    replaces_certificate_id: str | None = None


class CertificateList(BaseModel):
    certificates: list[CertificateView]


class ConfirmCertificate(BaseModel):
    """The candidate confirms what will be printed; from then on it is locked. Both fields are optional here
    because an application may already hold them (a replacement keeps the old photo and address); one that holds
    neither is refused with 422 ``photo_required`` or ``delivery_address_required``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    photo_reference: str | None = Field(default=None, min_length=1, max_length=200,
                                        description="The certificate photo (a stored file's reference); needed "
                                                    "when the application has none yet")
    delivery_address: str | None = Field(default=None, min_length=1, max_length=200,
                                         description="Where the printed certificate is mailed; needed when the "
                                                     "application has none yet")


class RequestCorrection(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    field: Literal["holder_name", "photo_reference"]
    requested_value: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=200)


class DecideCorrection(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    decision: Literal["accept", "reject"]
    note: str = Field(min_length=1, max_length=200, description="Shown to the candidate")


class CorrectionRequestView(BaseModel):
    request_id: str
    certificate_id: str
    field: str
    current_value: str | None = None
    requested_value: str
    reason: str
    status: Literal["open", "accepted", "rejected"]
    decided_by: str | None = None
    decision_note: str | None = None
    created_at: datetime
    decided_at: datetime | None = None


class CorrectionRequestList(BaseModel):
    requests: list[CorrectionRequestView]


class RevokeCertificate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=1, max_length=200)


class HistoryEntry(BaseModel):
    version: int
    at: datetime
    action: str
    status: CertificateStatus
    actor: str
    detail: dict[str, Any] | None = None


class CertificateHistoryView(BaseModel):
    certificate_id: str
    entries: list[HistoryEntry]


class ApplyForReplacement(BaseModel):
    """补办 (reissue: lost or damaged) or 勘误更换 (correction: something printed is wrong). Cannot be withdrawn."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: Literal["reissue", "correction"]
    reason: str = Field(min_length=1, max_length=200)
    identity_video_reference: str | None = Field(default=None, min_length=1, max_length=200,
                                                 description="Required for a correction: the recorded identity "
                                                             "video")
    corrected_holder_name: str | None = Field(default=None, min_length=1, max_length=40,
                                              description="A correction of the printed name")


class CancelReplacement(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=1, max_length=200, description="Shown to the candidate")


class ReplacementApplicationView(BaseModel):
    application_id: str
    certificate_id: str
    kind: Literal["reissue", "correction"]
    status: Literal["awaiting_payment", "pending", "processing", "completed", "cancelled"]
    reason: str
    identity_video_reference: str | None = None
    corrected_holder_name: str | None = None
    fee_fen: int | None = None
    new_certificate_id: str | None = None
    tracking_number: str | None = Field(default=None, description="The new certificate's, once shipped")
    cancel_reason: str | None = None
    created_at: datetime
    updated_at: datetime


class ReplacementApplicationList(BaseModel):
    applications: list[ReplacementApplicationView]


class BatchView(BaseModel):
    batch_id: str
    batch_number: int
    status: Literal["open", "closed"]
    certificate_count: int
    created_at: datetime
    closed_at: datetime | None = None
    closed_by: str | None = None


class BatchList(BaseModel):
    batches: list[BatchView]


class ShipCertificate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    courier: str = Field(min_length=1, max_length=40, description="e.g. EMS, SF Express")
    tracking_number: str = Field(min_length=4, max_length=40, pattern=r"^[A-Za-z0-9-]+$")


class RevocationCaseView(BaseModel):
    """An issued certificate whose qualification a re-check took away: staff revoke it or keep it by ``decide_by``."""

    case_id: str
    certificate_id: str
    certificate_number: str | None = None
    reason_code: Literal["result_corrected"]
    review_id: str
    corrected_result_id: str
    status: Literal["open", "revoked", "kept"]
    opened_at: datetime
    decide_by: date
    overdue: bool = False
    decided_at: datetime | None = None
    decided_by: str | None = None
    note: str | None = None


class RevocationCaseList(BaseModel):
    cases: list[RevocationCaseView]


class DecideRevocationCase(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    decision: Literal["revoke", "keep"]
    note: str = Field(min_length=1, max_length=200, description="Why: shown to the candidate as the revocation "
                      "reason when revoked, kept in the case when kept")
