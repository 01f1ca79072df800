"""Certificate rules in plain Python: the life of a certificate as a state machine."""

from __future__ import annotations

from dataclasses import dataclass

# The fee codes certificates asks for. Their amounts are payments' (its fee schedule, GET /api/v1/fees): certificates
# asks payments for the schedule when it creates a certificate or an application and keeps no price of its own.
CERTIFICATE_FEE_CODE = "certificate_fee"

# The application, then the certificate. Every change goes through ``next_status``.
PENDING_CONFIRMATION = "pending_confirmation"  # the candidate checks what will be printed
CORRECTION_REQUESTED = "correction_requested"  # ... and asked staff to correct something
AWAITING_CANDIDATE_PAYMENT = "awaiting_candidate_payment"  # 待考生付款
AWAITING_INSTITUTION_PAYMENT = "awaiting_institution_payment"  # 待机构代缴
ISSUED = "issued"
REVOKED = "revoked"
SUPERSEDED = "superseded"
WITHDRAWN = "withdrawn"  # a re-check took the qualification away before the certificate was issued

AWAITING_PAYMENT = (AWAITING_CANDIDATE_PAYMENT, AWAITING_INSTITUTION_PAYMENT)
STATUSES = (PENDING_CONFIRMATION, CORRECTION_REQUESTED, *AWAITING_PAYMENT, ISSUED, REVOKED, SUPERSEDED, WITHDRAWN)

# action -> (the statuses it may start from, the status it leads to; None: decided by the action itself)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "request_correction": ((PENDING_CONFIRMATION,), CORRECTION_REQUESTED),
    "decide_correction": ((CORRECTION_REQUESTED,), PENDING_CONFIRMATION),
    "confirm": ((PENDING_CONFIRMATION,), None),  # who pays decides which awaiting status
    "pay": (AWAITING_PAYMENT, ISSUED),
    "revoke": ((ISSUED,), REVOKED),
    "supersede": ((ISSUED,), SUPERSEDED),
    "withdraw": ((PENDING_CONFIRMATION, CORRECTION_REQUESTED, *AWAITING_PAYMENT), WITHDRAWN),
}

# Why a certificate was revoked, for machines (certificate.revoked.v1 ``reason_code``); the reason text says more.
REVOKED_BY_STAFF, REVOKED_RESULT_CORRECTED, REVOKED_FEE_REFUNDED = "staff", "result_corrected", "fee_refunded"

# A re-check that takes away the qualification of an issued certificate opens a revocation case for staff, to be
# decided within this many days (listed as overdue after); or, if the authority so configures, revokes at once.
REVOCATION_REVIEW_DAYS = 10
ON_RESULT_CORRECTION = ("review", "automatic")
CASE_OPEN, CASE_REVOKED, CASE_KEPT = "open", "revoked", "kept"
CASE_DECISIONS = {"revoke": CASE_REVOKED, "keep": CASE_KEPT}


def decide_case(status: str, decision: str) -> str:
    """An open case is decided once: revoke (the certificate goes, reason result_corrected) or keep (staff say why,
    for example the qualification rests on another result too)."""
    if status != CASE_OPEN:
        raise IllegalTransition(f"decide ({decision})", status, "revocation case")
    return CASE_DECISIONS[decision]

CORRECTABLE_FIELDS = ("holder_name", "photo_reference")

# Replacement applications: reissue (补办, a lost or damaged certificate) and correction-and-replacement
# (勘误更换, something printed was wrong). The candidate may withdraw one until it is paid; staff may cancel one at
# any point before it is completed (a paid one's fee goes back). Either way another application can follow.
REPLACEMENT_KINDS = {"reissue": "certificate_reissue", "correction": "certificate_correction"}  # -> fee code
APPLICATION_AWAITING_PAYMENT = "awaiting_payment"
APPLICATION_PENDING = "pending"  # 待办理: paid, waiting for staff
APPLICATION_PROCESSING = "processing"  # 办理中
APPLICATION_COMPLETED = "completed"  # 已完成办理: the new certificate is issued, the old one superseded
APPLICATION_CANCELLED = "cancelled"  # 已取消办理: with a reason; the fee goes back
APPLICATION_ACTIVE = (APPLICATION_AWAITING_PAYMENT, APPLICATION_PENDING, APPLICATION_PROCESSING)

APPLICATION_TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "pay": ((APPLICATION_AWAITING_PAYMENT,), APPLICATION_PENDING),
    "start": ((APPLICATION_PENDING,), APPLICATION_PROCESSING),
    "complete": ((APPLICATION_PROCESSING,), APPLICATION_COMPLETED),
    "withdraw": ((APPLICATION_AWAITING_PAYMENT,), APPLICATION_CANCELLED),  # the candidate, before paying
    "cancel": (APPLICATION_ACTIVE, APPLICATION_CANCELLED),  # staff, with a reason the candidate reads
    "void": (APPLICATION_ACTIVE, APPLICATION_CANCELLED),  # the certificate was revoked: nothing left to replace
}


def next_application_status(status: str, action: str) -> str:
    allowed_from, target = APPLICATION_TRANSITIONS[action]
    if status not in allowed_from:
        raise IllegalTransition(action, status, "replacement application")
    return target


class IllegalTransition(Exception):
    def __init__(self, action: str, status: str, thing: str = "certificate"):
        super().__init__(f"cannot {action.replace('_', ' ')} a {thing} that is {status.replace('_', ' ')}")
        self.action = action
        self.status = status


def next_status(status: str, action: str, payer_kind: str | None = None) -> str:
    allowed_from, target = TRANSITIONS[action]
    if status not in allowed_from:
        raise IllegalTransition(action, status)
    if target is None:  # "confirm": who pays decides which awaiting status
        return awaiting_status(payer_kind or "candidate")
    return target


def awaiting_status(payer_kind: str) -> str:
    return {"candidate": AWAITING_CANDIDATE_PAYMENT, "institution": AWAITING_INSTITUTION_PAYMENT}[payer_kind]


@dataclass(frozen=True)
class Payer:
    kind: str  # candidate | institution
    payer_id: str


def payer_for(candidate_id: str, institution_id: str | None) -> Payer:
    """A candidate registered through a training institution is paid for by it (代缴); others pay themselves."""
    if institution_id:
        return Payer("institution", institution_id)
    return Payer("candidate", candidate_id)


def serial_sequence_name(year: int, exam_region: str) -> str:
    return f"certificate:{year}:{exam_region}"


# Production and mailing, alongside the certificate's status: an issued certificate joins the open production
# batch; staff close the batch for the printer; then each certificate is shipped and delivered.
DELIVERY_NONE, DELIVERY_QUEUED, DELIVERY_PRINTING, DELIVERY_SHIPPED, DELIVERY_DELIVERED = (
    "none", "queued", "printing", "shipped", "delivered")
DELIVERY_TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "queue": ((DELIVERY_NONE,), DELIVERY_QUEUED),
    "print": ((DELIVERY_QUEUED,), DELIVERY_PRINTING),
    "ship": ((DELIVERY_PRINTING,), DELIVERY_SHIPPED),
    "deliver": ((DELIVERY_SHIPPED,), DELIVERY_DELIVERED),
}
# Working days (credence_common/calendar.py: weekends and PUBLIC_HOLIDAYS do not count). The online verification
# report opens this many after payment (REPORT_DELAY_WORKING_DAYS overrides); a printed certificate is promised to
# ship within this many of issue (SHIPPING_PROMISE_WORKING_DAYS overrides).
REPORT_DELAY_WORKING_DAYS = 3
SHIPPING_PROMISE_WORKING_DAYS = 30


def next_delivery_status(status: str, action: str, certificate_status: str) -> str:
    """Only an issued certificate is printed, shipped or delivered: not one unpaid, revoked or superseded."""
    allowed_from, target = DELIVERY_TRANSITIONS[action]
    if certificate_status != ISSUED:
        raise IllegalTransition(action, certificate_status)
    if status not in allowed_from:
        raise IllegalTransition(action, status, "certificate whose delivery")
    return target