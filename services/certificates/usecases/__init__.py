"""Certificates service layer: each function runs inside the caller's unit of work (one transaction), and
every change to a certificate goes through ``_change`` (the state machine, the version, the timeline)."""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from credence_common import calendar
from credence_common.contracts.certificate_numbers import format_certificate_number
from credence_common.contracts.certificates import (
    ApplyForReplacement,
    BatchList,
    BatchView,
    CertificateHistoryView,
    CertificateList,
    CertificateView,
    CorrectionRequestList,
    CorrectionRequestView,
    HistoryEntry,
    ReplacementApplicationList,
    ReplacementApplicationView,
    RequestCorrection,
)
from credence_common.contracts.envelope import ReceivedEvent, utcnow
from credence_common.contracts.errors import Conflict, Forbidden, InvalidInput, NotFound, ServiceUnavailable
from credence_common.contracts.events import (
    CandidateConfirmedV1,
    CandidateQualifiedV1,
    CertificateAwaitingPaymentV1,
    CertificateIssuedV1,
    CertificateRefundRequestedV1,
    CertificateSupersededV1,
    FeeNoLongerDueV1,
    PaymentSucceededV1,
    ReplacementAwaitingPaymentV1,
)
from credence_common.contracts.payments import FeeSchedule
from credence_common.persistence.messaging import Outbox
from credence_common.persistence.sequences import next_value, next_value_outside, next_values_outside
from services.certificates import domain
from services.certificates.adapters import printer_csv, proof_sheet
from services.certificates.models import (
    CandidatePayer,
    Certificate,
    CertificateHistory,
    CorrectionRequest,
    NumberSequence,
    OutboxEvent,
    ProductionBatch,
    ReplacementApplication,
    WithdrawnQualification,
)

log = logging.getLogger(__name__)
outbox = Outbox(OutboxEvent)


@dataclass(frozen=True)
class CertificateRules:
    report_delay_working_days: int = domain.REPORT_DELAY_WORKING_DAYS
    holidays: tuple[date, ...] = ()
    shipping_promise_working_days: int = domain.SHIPPING_PROMISE_WORKING_DAYS
    revocation_review_days: int = domain.REVOCATION_REVIEW_DAYS
    on_result_correction: str = "review"  # or "automatic" (domain.ON_RESULT_CORRECTION)


def certificate_view(certificate: Certificate) -> CertificateView:
    return CertificateView.model_validate(certificate, from_attributes=True)


def find_certificate(session: Session, certificate_id: str, lock: bool = False) -> Certificate:
    certificate = session.get(Certificate, certificate_id, with_for_update=lock)
    if certificate is None:
        raise NotFound("certificate_not_found", f"No certificate {certificate_id}.")
    return certificate


def owned_certificate(session: Session, candidate_id: str, certificate_id: str, lock: bool = False) -> Certificate:
    certificate = find_certificate(session, certificate_id, lock)
    if certificate.candidate_id != candidate_id:
        raise Forbidden("not_your_certificate", "This certificate application is someone else's.")
    return certificate


def _change(session: Session, certificate: Certificate, action: str, actor: str, detail: dict | None = None,
            payer_kind: str | None = None) -> None:
    """Move the certificate along the state machine, raise its version and add the step to its timeline."""
    try:
        certificate.status = domain.next_status(certificate.status, action, payer_kind)
    except domain.IllegalTransition as illegal:
        raise Conflict("illegal_transition", f"You {illegal}.") from None
    _note(session, certificate, action, actor, detail)


def _note(session: Session, certificate: Certificate, action: str, actor: str, detail: dict | None = None) -> None:
    """A step in the certificate's timeline (after ``_change`` set a new status, or on its own for a step that
    leaves the status as it is, such as a replacement asked for): a new version, one history row."""
    certificate.version = (certificate.version or 0) + 1
    session.add(CertificateHistory(certificate_id=certificate.certificate_id, version=certificate.version,
                                   at=utcnow(), action=action, status=certificate.status, actor=actor,
                                   detail=json.dumps(detail, ensure_ascii=False) if detail else None))


def _refund(session: Session, certificate_id: str, candidate_id: str, reference_id: str, order_number: str | None,
            amount_fen: int | None, reason: str, refund_request_id: str) -> None:
    """Money certificates will not use goes back, through payments (the outbox makes sure it is asked)."""
    if not order_number or not amount_fen or amount_fen <= 0:
        return
    outbox.add(session, CertificateRefundRequestedV1(
        refund_request_id=refund_request_id, certificate_id=certificate_id, candidate_id=candidate_id,
        reference_id=reference_id, order_number=order_number, amount_fen=amount_fen, reason=reason[:200],
        requested_at=utcnow()), subject=refund_request_id)


# --- what it costs: payments' fee schedule -----------------------------------------------------------------

def price_of(schedule: FeeSchedule, fee_code: str) -> int:
    """The amount payments' fee schedule (its ``fee_schedule`` RPC, asked by the service before the transaction
    opens) gives ``fee_code``: the one price, which payments also charges when it opens the due. A schedule without
    the fee is refused like payments being away (503, and an event handled later): payments would not open the
    due either until staff add it (``PUT /api/v1/fees/<fee_code>``)."""
    for fee in schedule.fees:
        if fee.fee_code == fee_code:
            return fee.amount_fen
    raise ServiceUnavailable("fee_not_in_schedule", f"Payments' fee schedule has no {fee_code!r} yet; try again "
                             "once staff have set it.")


# --- who pays ------------------------------------------------------------------------------------------

def record_candidate_payer(session: Session, event: CandidateConfirmedV1) -> None:
    payer = session.get(CandidatePayer, event.candidate_id)
    if payer is None:
        session.add(CandidatePayer(candidate_id=event.candidate_id, institution_id=event.institution_id,
                                   updated_at=utcnow()))
    else:
        payer.institution_id, payer.updated_at = event.institution_id, utcnow()


def payer_of(session: Session, candidate_id: str) -> domain.Payer:
    known = session.get(CandidatePayer, candidate_id)
    return domain.payer_for(candidate_id, known.institution_id if known else None)


# --- the application ----------------------------------------------------------------------------------

def _qualification_to_apply(session: Session, event: CandidateQualifiedV1,
                            lock: bool) -> tuple[bool, Certificate | None]:
    """Whether ``event`` is to create a certificate, and the certificate already holding its qualification (to let
    go of it) if any: not when the qualification was withdrawn after it was gained, nor when its certificate exists
    and was not lost to that withdrawal."""
    withdrawn = session.get(WithdrawnQualification, event.result_id)
    if withdrawn is not None and event.qualified_at <= withdrawn.withdrawn_at:
        return False, None
    query = select(Certificate).where(Certificate.result_id == event.result_id)
    existing = session.scalars(query.with_for_update() if lock else query).first()
    if existing is not None:
        lost = existing.status == domain.WITHDRAWN or (
            existing.status == domain.REVOKED and existing.revocation_code == domain.REVOKED_RESULT_CORRECTED)
        if not (lost and withdrawn is not None):
            return False, None
    return True, existing


def needs_fee_schedule(session: Session, event: ReceivedEvent[CandidateQualifiedV1], processed_model) -> bool:
    """A read before the qualified event is applied: payments is asked for its price only when a certificate is to
    be created, so a duplicate or an already applied event neither costs a call nor waits while payments is down."""
    if session.get(processed_model, event.envelope.id) is not None:
        return False
    return _qualification_to_apply(session, event.data, lock=False)[0]


def create_for_qualified_candidate(session: Session, event: CandidateQualifiedV1, fees: FeeSchedule | None) -> None:
    """An application holding exactly what will be printed, for the candidate to check and confirm, showing the
    certificate fee of payments' schedule ``fees`` (asked when the event is handled; the amount paid replaces it,
    and payments prices the due from its schedule when the candidate confirms). One per
    qualification, however often the event comes; a qualification withdrawn by a re-check (a later withdrawal on
    record) is not applied, and one gained again after its withdrawal (a course-based program passed again keeps
    its id) gets a new certificate, the old one letting go of the id."""
    to_apply, existing = _qualification_to_apply(session, event, lock=True)
    if not to_apply:
        log.info("qualification %s: no new certificate (withdrawn since, or it has one)", event.result_id)
        return
    if fees is None:  # the read before said there was nothing to create, and something changed since: ask again
        raise ServiceUnavailable("fee_schedule_needed", "Payments' fee schedule is needed for this qualification.")
    if existing is not None:
        existing.result_id = existing.certificate_id  # unique, and never a qualification's id
        session.flush()
    payer = payer_of(session, event.candidate_id)
    now = utcnow()
    certificate = Certificate(
        certificate_id=str(uuid.uuid4()), result_id=event.result_id, candidate_id=event.candidate_id,
        ticket_number=event.ticket_number, holder_name=event.full_name,
        resident_id_number_masked=event.resident_id_number_masked, program_code=event.program_code,
        program_name=event.program_name, level=event.level, qualified_on=calendar.business_day(event.qualified_at),
        sitting=event.sitting, status=domain.PENDING_CONFIRMATION, payer_kind=payer.kind, payer_id=payer.payer_id,
        certificate_fee_fen=price_of(fees, domain.CERTIFICATE_FEE_CODE), created_at=now, version=1,
        delivery_status=domain.DELIVERY_NONE)
    session.add(certificate)
    session.flush()
    session.add(CertificateHistory(certificate_id=certificate.certificate_id, version=1, at=now, action="created",
                                   status=certificate.status, actor="scoring",
                                   detail=json.dumps({"result_id": event.result_id})))


def confirm(session: Session, candidate_id: str, certificate_id: str, photo_reference: str | None,
            delivery_address: str | None = None) -> CertificateView:
    """The candidate confirms what will be printed, which locks it, and the fee falls due."""
    certificate = owned_certificate(session, candidate_id, certificate_id, lock=True)
    if certificate.status == domain.PENDING_CONFIRMATION:
        certificate.photo_reference = photo_reference or certificate.photo_reference
        certificate.delivery_address = delivery_address or certificate.delivery_address
    if certificate.status == domain.PENDING_CONFIRMATION and not certificate.photo_reference:
        raise InvalidInput("photo_required", "Add the certificate photo (photo_reference) to confirm.")
    if certificate.status == domain.PENDING_CONFIRMATION and not certificate.delivery_address:
        raise InvalidInput("delivery_address_required", "Add where the printed certificate is to be mailed "
                           "(delivery_address) to confirm.")
    payer = payer_of(session, certificate.candidate_id)
    _change(session, certificate, "confirm", f"candidate:{candidate_id}", {"payer_kind": payer.kind},
            payer_kind=payer.kind)
    now = utcnow()
    certificate.payer_kind, certificate.payer_id, certificate.confirmed_at = payer.kind, payer.payer_id, now
    outbox.add(session, CertificateAwaitingPaymentV1(
        certificate_id=certificate.certificate_id, candidate_id=certificate.candidate_id,
        payer_kind=certificate.payer_kind, payer_id=certificate.payer_id,
        certificate_fee_fen=certificate.certificate_fee_fen, program_code=certificate.program_code, created_at=now,
        sequence=certificate.version), subject=certificate.certificate_id)
    return certificate_view(certificate)


def request_correction(session: Session, candidate_id: str, certificate_id: str,
                       request: RequestCorrection) -> CorrectionRequestView:
    certificate = owned_certificate(session, candidate_id, certificate_id, lock=True)
    if request.field == "holder_name" and len(request.requested_value) > 40:
        raise InvalidInput("name_too_long", "A name on a certificate has at most 40 characters.")
    current = getattr(certificate, request.field)
    _change(session, certificate, "request_correction", f"candidate:{candidate_id}",
            {"field": request.field, "reason": request.reason})
    correction = CorrectionRequest(request_id=str(uuid.uuid4()), certificate_id=certificate_id, field=request.field,
                                   current_value=current, requested_value=request.requested_value,
                                   reason=request.reason, status="open", created_at=utcnow())
    session.add(correction)
    session.flush()
    return CorrectionRequestView.model_validate(correction, from_attributes=True)


def decide_correction(session: Session, staff_id: str, request_id: str, decision: str,
                      note: str) -> CorrectionRequestView:
    correction = session.get(CorrectionRequest, request_id, with_for_update=True)
    if correction is None:
        raise NotFound("correction_request_not_found", f"No correction request {request_id}.")
    if correction.status != "open":
        raise Conflict("correction_already_decided", f"This request was already {correction.status}.")
    certificate = find_certificate(session, correction.certificate_id, lock=True)
    _change(session, certificate, "decide_correction", f"staff:{staff_id}",
            {"field": correction.field, "decision": decision, "note": note})
    if decision == "accept":
        setattr(certificate, correction.field, correction.requested_value)
    correction.status = "accepted" if decision == "accept" else "rejected"
    correction.decided_by, correction.decision_note, correction.decided_at = f"staff:{staff_id}", note, utcnow()
    return CorrectionRequestView.model_validate(correction, from_attributes=True)


def correction_requests(session: Session, open_only: bool = True,
                        certificate_id: str | None = None) -> CorrectionRequestList:
    query = select(CorrectionRequest).order_by(CorrectionRequest.created_at)
    if open_only:
        query = query.where(CorrectionRequest.status == "open")
    if certificate_id:
        query = query.where(CorrectionRequest.certificate_id == certificate_id)
    return CorrectionRequestList(requests=[CorrectionRequestView.model_validate(r, from_attributes=True)
                                           for r in session.scalars(query)])


# --- issuance and after ---------------------------------------------------------------------------------

def _serial_sequence(certificate: Certificate, now) -> tuple[int, str, str]:
    region = certificate.ticket_number[:2]
    year = calendar.business_day(now).year  # the year of the issue date printed beside it, in Beijing
    return year, region, domain.serial_sequence_name(year, region)


def _new_number(session: Session, certificate: Certificate, now, payments: PaymentBatch | None = None) -> str:
    year, region, sequence = _serial_sequence(certificate, now)
    serial = payments.reserved_serial(sequence) if payments is not None else None
    if serial is None:
        serial = next_value_outside(session, NumberSequence, sequence)
    return format_certificate_number(year, region, serial)


def _issued_event(certificate: Certificate, now) -> CertificateIssuedV1:
    return CertificateIssuedV1(
        certificate_id=certificate.certificate_id, certificate_number=certificate.certificate_number,
        candidate_id=certificate.candidate_id, ticket_number=certificate.ticket_number,
        holder_name=certificate.holder_name, resident_id_number_masked=certificate.resident_id_number_masked,
        program_code=certificate.program_code, program_name=certificate.program_name,
        issued_on=calendar.business_day(now), issued_at=now, sequence=certificate.version, level=certificate.level,
        qualified_on=certificate.qualified_on, payer_kind=certificate.payer_kind,
        report_available_on=certificate.report_available_on,
        replaces_certificate_id=certificate.replaces_certificate_id)


@dataclass
class PaymentBatch:
    """What a batch of payments shares within its one transaction: made by ``lock_for_payments`` and handed to
    each ``issue_on_payment`` of the batch (``consume_batch``'s ``batch=``), so no payment queries on its own."""

    # every certificate the batch pays for, locked (None: no such certificate)
    certificates: dict[str, Certificate | None] = field(default_factory=dict)
    # serials taken from the counters for the batch, per counter, handed out in order
    serials: dict[str, deque[int]] = field(default_factory=dict)
    # the open production batch, share-locked by the batch's first issue, which the rest join
    production_batch: ProductionBatch | None = None

    def reserved_serial(self, sequence: str) -> int | None:
        """The next serial reserved for the batch on this counter; None when none is left."""
        reserved = self.serials.get(sequence)
        return reserved.popleft() if reserved else None


def lock_for_payments(session: Session, events: list[PaymentSucceededV1]) -> PaymentBatch:
    """Before a batch of payments: every certificate they pay for, locked in one query (in one order, so two
    batches cannot deadlock), for ``issue_on_payment`` to find. With no query left per payment, what each one
    writes is flushed together at commit instead of statement by statement."""
    ids = sorted({event.reference_id for event in events if event.purpose == "certificate_fee"})
    found = {certificate.certificate_id: certificate for certificate in session.scalars(
        select(Certificate).where(Certificate.certificate_id.in_(ids)).order_by(Certificate.certificate_id)
        .with_for_update())} if ids else {}
    # One counter statement per year and region for the whole batch instead of one per certificate (it was a
    # quarter of the issuing process's time). A number reserved and not used (a payment that issues nothing)
    # is a gap, as these counters allow.
    wanted = Counter(_serial_sequence(certificate, utcnow())[2] for certificate in found.values()
                     if certificate.status in domain.AWAITING_PAYMENT)
    return PaymentBatch(
        certificates={certificate: found.get(certificate) for certificate in ids},
        serials={sequence: deque(next_values_outside(session, NumberSequence, sequence, count))
                 for sequence, count in sorted(wanted.items())})


def issue_on_payment(session: Session, event: PaymentSucceededV1, rules: CertificateRules,
                     batch: PaymentBatch) -> None:
    """One payment of a batch (``batch``: what ``lock_for_payments`` prepared for all of them)."""
    if event.purpose in domain.REPLACEMENT_KINDS.values():
        replacement_paid(session, event)
        return
    if event.purpose != "certificate_fee":
        return
    locked = batch.certificates
    certificate = locked[event.reference_id] if event.reference_id in locked else \
        session.get(Certificate, event.reference_id, with_for_update=True)
    if certificate is None or certificate.status not in domain.AWAITING_PAYMENT:
        # Paid twice, or for something no longer awaiting payment: nothing is issued and the money goes back.
        log.error("payment %s for certificate %s which is %s: nothing issued, refund requested", event.order_number,
                  event.reference_id, certificate.status if certificate else "unknown")
        _refund(session, event.reference_id, event.candidate_id or (certificate.candidate_id if certificate else ""),
                event.reference_id, event.order_number, event.amount_fen,
                "Paid for a certificate that was not awaiting payment", f"unused:{event.order_number}:"
                f"{event.due_id or event.reference_id}")
        return
    now = utcnow()
    certificate.certificate_number = _new_number(session, certificate, now, batch)
    certificate.issued_at = now
    certificate.payment_order_number = event.order_number
    certificate.certificate_fee_fen = event.amount_fen  # what was paid, at the price payments' schedule set
    certificate.report_available_on = calendar.add_working_days(
        calendar.business_day(event.paid_at), rules.report_delay_working_days, rules.holidays)
    _change(session, certificate, "pay", f"payments:{event.order_number}",
            {"certificate_number": certificate.certificate_number, "paid_fen": event.amount_fen})
    issued = _issued_event(certificate, now)  # the version of the issue itself; joining a batch follows it
    join_open_batch(session, certificate, now, rules, batch)
    outbox.add(session, issued, subject=certificate.certificate_number)


# --- reissue and correction-and-replacement -----------------------------------------------------------

def application_view(application: ReplacementApplication, session: Session | None = None) -> ReplacementApplicationView:
    view = ReplacementApplicationView.model_validate(application, from_attributes=True)
    if session is not None and application.new_certificate_id:
        new = session.get(Certificate, application.new_certificate_id)
        view.tracking_number = new.tracking_number if new else None
    return view


def find_application(session: Session, application_id: str, lock: bool = False) -> ReplacementApplication:
    application = session.get(ReplacementApplication, application_id, with_for_update=lock)
    if application is None:
        raise NotFound("application_not_found", f"No replacement application {application_id}.")
    return application


def _locked_with_its_certificate(session: Session, application_id: str) -> ReplacementApplication:
    """The application locked after its certificate: every path that locks both (a revocation locks the
    certificate, then its applications) takes them in this order, so two of them never deadlock."""
    application = find_application(session, application_id)
    find_certificate(session, application.certificate_id, lock=True)
    return session.get(ReplacementApplication, application_id, with_for_update=True, populate_existing=True)


def _move(application: ReplacementApplication, action: str) -> None:
    try:
        application.status = domain.next_application_status(application.status, action)
    except domain.IllegalTransition as illegal:
        raise Conflict("illegal_transition", f"You {illegal}.") from None
    application.updated_at = utcnow()


def apply_for_replacement(session: Session, candidate_id: str, certificate_id: str, request: ApplyForReplacement,
                          fees: FeeSchedule) -> ReplacementApplicationView:
    """The application's fee is the kind's (``domain.REPLACEMENT_KINDS``) in payments' schedule ``fees``, asked when
    the candidate applies; the amount paid replaces it."""
    certificate = owned_certificate(session, candidate_id, certificate_id, lock=True)
    if certificate.status != domain.ISSUED:
        raise Conflict("illegal_transition", f"Only an issued certificate can be reissued or corrected; this one "
                       f"is {certificate.status.replace('_', ' ')}.")
    if request.kind == "correction" and not request.identity_video_reference:
        raise InvalidInput("identity_video_required", "A correction needs the recorded identity video "
                           "(identity_video_reference).")
    if request.kind == "reissue" and request.corrected_holder_name:
        raise InvalidInput("correction_only", "A reissue prints the certificate as it was; apply for a correction "
                           "to change the name.")
    active = session.scalars(select(ReplacementApplication.application_id).where(
        ReplacementApplication.certificate_id == certificate_id,
        ReplacementApplication.status.in_(domain.APPLICATION_ACTIVE))).first()
    if active:
        raise Conflict("replacement_in_progress", f"Application {active} for this certificate is still open.")
    now = utcnow()
    application = ReplacementApplication(
        application_id=str(uuid.uuid4()), certificate_id=certificate_id, candidate_id=candidate_id,
        kind=request.kind, status=domain.APPLICATION_AWAITING_PAYMENT, reason=request.reason,
        identity_video_reference=request.identity_video_reference,
        corrected_holder_name=request.corrected_holder_name,
        fee_fen=price_of(fees, domain.REPLACEMENT_KINDS[request.kind]), created_at=now, updated_at=now)
    session.add(application)
    _note(session, certificate, f"{request.kind}_requested", f"candidate:{candidate_id}",
          {"application_id": application.application_id, "reason": request.reason})
    # its own event type: the certificate stays issued, and a subscriber that maps certificate.awaiting_payment to
    # a status must not see it go back to awaiting payment
    outbox.add(session, ReplacementAwaitingPaymentV1(
        application_id=application.application_id, certificate_id=certificate_id,
        certificate_number=certificate.certificate_number, candidate_id=candidate_id, kind=request.kind,
        purpose=domain.REPLACEMENT_KINDS[request.kind], payer_id=candidate_id, fee_fen=application.fee_fen,
        created_at=now), subject=certificate.certificate_number)
    session.flush()
    return application_view(application)


def replacement_paid(session: Session, event: PaymentSucceededV1) -> None:
    application = session.get(ReplacementApplication, event.reference_id, with_for_update=True)
    if application is None or application.status != domain.APPLICATION_AWAITING_PAYMENT:
        log.error("payment %s for replacement %s which is %s: refund requested", event.order_number,
                  event.reference_id, application.status if application else "unknown")
        _refund(session, application.certificate_id if application else event.reference_id,
                event.candidate_id or (application.candidate_id if application else ""), event.reference_id,
                event.order_number, event.amount_fen, "Paid for an application no longer awaiting payment",
                f"unused:{event.order_number}:{event.due_id or event.reference_id}")
        return
    _move(application, "pay")
    application.payment_order_number, application.fee_fen = event.order_number, event.amount_fen


def start_replacement(session: Session, staff_id: str, application_id: str) -> ReplacementApplicationView:
    application = find_application(session, application_id, lock=True)
    _move(application, "start")
    application.handled_by = f"staff:{staff_id}"
    return application_view(application)


def complete_replacement(session: Session, staff_id: str, application_id: str,
                         rules: CertificateRules) -> ReplacementApplicationView:
    """The new certificate is issued under a new number; the old one is superseded."""
    application = _locked_with_its_certificate(session, application_id)
    _move(application, "complete")
    old = find_certificate(session, application.certificate_id)
    if old.status != domain.ISSUED:  # revoked while the application was processed
        raise Conflict("illegal_transition", f"The certificate is {old.status} now; cancel the application.")
    now = utcnow()
    new = Certificate(
        certificate_id=str(uuid.uuid4()), result_id=application.application_id, candidate_id=old.candidate_id,
        ticket_number=old.ticket_number, holder_name=application.corrected_holder_name or old.holder_name,
        resident_id_number_masked=old.resident_id_number_masked, program_code=old.program_code,
        program_name=old.program_name, level=old.level, qualified_on=old.qualified_on,
        photo_reference=old.photo_reference, sitting=old.sitting, status=domain.ISSUED, payer_kind="candidate",
        payer_id=old.candidate_id, certificate_fee_fen=application.fee_fen or 0, created_at=now,
        confirmed_at=now, issued_at=now, payment_order_number=application.payment_order_number,
        report_available_on=calendar.add_working_days(calendar.business_day(now), rules.report_delay_working_days,
                                                      rules.holidays),
        replaces_certificate_id=old.certificate_id, delivery_address=old.delivery_address, delivery_status="none",
        version=1)
    new.certificate_number = _new_number(session, new, now)
    session.add(new)
    session.flush()
    session.add(CertificateHistory(certificate_id=new.certificate_id, version=1, at=now, action=application.kind,
                                   status=domain.ISSUED, actor=f"staff:{staff_id}",
                                   detail=json.dumps({"replaces": old.certificate_number,
                                                      "application_id": application.application_id})))
    new_issued = _issued_event(new, now)
    join_open_batch(session, new, now, rules)  # accepted applications join the next batch
    _change(session, old, "supersede", f"staff:{staff_id}",
            {"superseded_by": new.certificate_number, "application_id": application.application_id})
    application.new_certificate_id = new.certificate_id
    application.handled_by = f"staff:{staff_id}"
    outbox.add(session, new_issued, subject=new.certificate_number)
    outbox.add(session, CertificateSupersededV1(
        certificate_id=old.certificate_id, certificate_number=old.certificate_number, candidate_id=old.candidate_id,
        superseded_by_certificate_id=new.certificate_id, superseded_by_certificate_number=new.certificate_number,
        reason=application.kind, superseded_at=now, sequence=old.version), subject=old.certificate_number)
    return application_view(application)


def _end_application(session: Session, application: ReplacementApplication, action: str, reason: str,
                     why: str, refund_reason: str) -> None:
    """End an application before completion. A paid one's fee goes back through payments; for an unpaid one,
    payments is told the fee is no longer due (it cancels the due and closes an open order; a payment that still
    arrives finds the application ended and is refunded by ``replacement_paid``)."""
    paid = application.status != domain.APPLICATION_AWAITING_PAYMENT
    _move(application, action)
    application.cancel_reason = reason
    if paid:
        _refund(session, application.certificate_id, application.candidate_id, application.application_id,
                application.payment_order_number, application.fee_fen, refund_reason,
                f"cancel:{application.application_id}")
        return
    outbox.add(session, FeeNoLongerDueV1(
        certificate_id=application.certificate_id, candidate_id=application.candidate_id,
        purpose=domain.REPLACEMENT_KINDS[application.kind], reference_id=application.application_id, reason=why,
        ended_at=utcnow()), subject=application.application_id)


def cancel_replacement(session: Session, staff_id: str, application_id: str,
                       reason: str) -> ReplacementApplicationView:
    """Cancelled with a reason the candidate reads; a paid fee goes back through payments, automatically."""
    application = _locked_with_its_certificate(session, application_id)
    certificate = find_certificate(session, application.certificate_id)
    _end_application(session, application, "cancel", reason, "cancelled_by_staff",
                     f"{application.kind} application cancelled: {reason}")
    application.handled_by = f"staff:{staff_id}"
    _note(session, certificate, f"{application.kind}_cancelled", f"staff:{staff_id}",
          {"application_id": application_id, "reason": reason})
    return application_view(application)


def withdraw_replacement(session: Session, candidate_id: str, application_id: str) -> ReplacementApplicationView:
    """The candidate changed their mind before paying (a paid application is in staff's hands: they cancel it)."""
    application = _locked_with_its_certificate(session, application_id)
    if application.candidate_id != candidate_id:  # another candidate's application does not exist for them
        raise NotFound("application_not_found", f"No replacement application {application_id}.")
    if application.status != domain.APPLICATION_AWAITING_PAYMENT:
        raise Conflict("application_paid" if application.status in domain.APPLICATION_ACTIVE else
                       "illegal_transition",
                       f"This application is {application.status.replace('_', ' ')}; only an unpaid one can be "
                       "withdrawn (once paid, ask staff to cancel it: the fee is refunded).")
    certificate = find_certificate(session, application.certificate_id)
    _end_application(session, application, "withdraw", "Withdrawn by the candidate.", "withdrawn_by_candidate", "")
    _note(session, certificate, f"{application.kind}_withdrawn", f"candidate:{candidate_id}",
          {"application_id": application_id})
    return application_view(application)


def replacement_applications(session: Session, candidate_id: str | None = None,
                             status: str | None = None) -> ReplacementApplicationList:
    query = select(ReplacementApplication).order_by(ReplacementApplication.created_at)
    if candidate_id:
        query = query.where(ReplacementApplication.candidate_id == candidate_id)
    if status:
        query = query.where(ReplacementApplication.status == status)
    return ReplacementApplicationList(applications=[application_view(a, session) for a in session.scalars(query)])


# --- production and mailing ---------------------------------------------------------------------------

def _deliver_step(session: Session, certificate: Certificate, action: str, actor: str,
                  detail: dict | None = None) -> None:
    try:
        certificate.delivery_status = domain.next_delivery_status(certificate.delivery_status, action,
                                                                  certificate.status)
    except domain.IllegalTransition as illegal:
        raise Conflict("illegal_transition", f"You {illegal}.") from None
    _note(session, certificate, {"queue": "queued", "print": "printing", "ship": "shipped",
                                 "deliver": "delivered"}[action], actor, detail)


def _open_batch(session: Session) -> ProductionBatch | None:
    # Share-locked: issuers do not wait for each other, but a batch being closed at this moment (closing takes
    # the row's update lock) is waited for and then skipped (PostgreSQL re-reads the row after the wait), so a
    # certificate never lands in a batch that already went to the printer.
    return session.scalars(select(ProductionBatch).where(ProductionBatch.status == "open")
                           .order_by(ProductionBatch.batch_number).limit(1).with_for_update(read=True)).first()


def join_open_batch(session: Session, certificate: Certificate, now, rules: CertificateRules,
                    payments: PaymentBatch | None = None) -> None:
    """Queue the certificate in the open production batch (opening one if none is open). Within a batch of
    ``payments``, the production batch found by the first is kept there for the rest (share-locked already)."""
    batch = payments.production_batch if payments is not None else None
    if batch is None:
        batch = _open_batch(session)
    if batch is None:
        # Only one issuer may open the next batch: it locks the batch counter's row until commit, so a second
        # issuer waits here, then finds the batch the first one opened (each statement sees what was committed
        # before it) instead of opening another.
        # (insert-or-ignore first: before the very first batch there is no row to lock, and an insert of the same
        # key waits for the other transaction's insert to commit or roll back)
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        session.execute(insert(NumberSequence).values(name="batch", last_value=0).on_conflict_do_nothing())
        session.execute(select(NumberSequence.name).where(NumberSequence.name == "batch").with_for_update())
        batch = _open_batch(session)
        if batch is None:
            batch = ProductionBatch(batch_id=str(uuid.uuid4()), status="open", created_at=now,
                                    batch_number=next_value(session, NumberSequence, "batch"))
            session.add(batch)
            session.flush()
    if payments is not None:
        payments.production_batch = batch
    certificate.batch_id = batch.batch_id
    certificate.ship_by = calendar.add_working_days(calendar.business_day(now), rules.shipping_promise_working_days,
                                                    rules.holidays)
    _deliver_step(session, certificate, "queue", "certificates", {"batch_number": batch.batch_number})


def batch_view(session: Session, batch: ProductionBatch) -> BatchView:
    count = session.scalar(select(func.count()).select_from(Certificate).where(Certificate.batch_id == batch.batch_id))
    return BatchView(batch_id=batch.batch_id, batch_number=batch.batch_number, status=batch.status,
                     certificate_count=count, created_at=batch.created_at, closed_at=batch.closed_at,
                     closed_by=batch.closed_by)


def batches(session: Session) -> BatchList:
    rows = session.scalars(select(ProductionBatch).order_by(ProductionBatch.batch_number.desc()))
    return BatchList(batches=[batch_view(session, b) for b in rows])


def find_batch(session: Session, batch_id: str, lock: bool = False) -> ProductionBatch:
    batch = session.get(ProductionBatch, batch_id, with_for_update=lock)
    if batch is None:
        raise NotFound("batch_not_found", f"No production batch {batch_id}.")
    return batch


def close_batch(session: Session, staff_id: str, batch_id: str) -> BatchView:
    """The batch goes to the printer; certificates issued from now on join a new one."""
    batch = find_batch(session, batch_id, lock=True)
    if batch.status != "open":
        raise Conflict("batch_closed", f"Batch {batch.batch_number} was already closed.")
    batch.status, batch.closed_at, batch.closed_by = "closed", utcnow(), f"staff:{staff_id}"
    for certificate in session.scalars(select(Certificate).where(
            Certificate.batch_id == batch_id, Certificate.status == domain.ISSUED,
            Certificate.delivery_status == domain.DELIVERY_QUEUED).with_for_update()):
        _deliver_step(session, certificate, "print", f"staff:{staff_id}", {"batch_number": batch.batch_number})
    return batch_view(session, batch)


def printable(session: Session, batch_id: str) -> list[dict]:
    """What the printer prints: issued certificates of the batch (one revoked meanwhile is left out)."""
    rows = session.scalars(select(Certificate).where(Certificate.batch_id == batch_id,
                                                     Certificate.status == domain.ISSUED)
                           .order_by(Certificate.certificate_number))
    return [{"certificate_id": c.certificate_id, "certificate_number": c.certificate_number,
             "holder_name": c.holder_name,
             "resident_id_number_masked": c.resident_id_number_masked, "program_name": c.program_name,
             "level": c.level or "", "qualified_on": c.qualified_on.isoformat() if c.qualified_on else "",
             "issued_on": calendar.business_day(c.issued_at).isoformat() if c.issued_at else "",
             "photo_reference": c.photo_reference or "", "delivery_address": c.delivery_address or ""}
            for c in rows]


def batch_csv(session: Session, batch_id: str) -> str:
    """The printer's CSV of a batch (``adapters/printer_csv.py``)."""
    find_batch(session, batch_id)
    return printer_csv.render(printable(session, batch_id))


def batch_proof_pdf(session: Session, batch_id: str) -> bytes:
    """A proof sheet: one line per certificate, for the printer and staff to check before printing."""
    batch = find_batch(session, batch_id)
    return proof_sheet.render(batch.batch_number, printable(session, batch_id))


def ship(session: Session, staff_id: str, certificate_id: str, courier: str, tracking_number: str) -> CertificateView:
    certificate = find_certificate(session, certificate_id, lock=True)
    _deliver_step(session, certificate, "ship", f"staff:{staff_id}",
                  {"courier": courier, "tracking_number": tracking_number})
    certificate.courier, certificate.tracking_number, certificate.shipped_at = courier, tracking_number, utcnow()
    return certificate_view(certificate)


def mark_delivered(session: Session, staff_id: str, certificate_id: str) -> CertificateView:
    certificate = find_certificate(session, certificate_id, lock=True)
    _deliver_step(session, certificate, "deliver", f"staff:{staff_id}")
    certificate.delivered_at = utcnow()
    return certificate_view(certificate)


def overdue_shipments(session: Session, today: date | None = None) -> CertificateList:
    today = today or calendar.business_day(utcnow())
    rows = session.scalars(select(Certificate).where(
        Certificate.status == domain.ISSUED,
        Certificate.delivery_status.in_((domain.DELIVERY_QUEUED, domain.DELIVERY_PRINTING)),
        Certificate.ship_by < today).order_by(Certificate.ship_by))
    return CertificateList(certificates=[certificate_view(c) for c in rows])


# --- reading --------------------------------------------------------------------------------------------

def find_by_number(session: Session, certificate_number: str) -> CertificateView:
    certificate = session.scalars(select(Certificate).where(
        Certificate.certificate_number == certificate_number)).first()
    if certificate is None:
        raise NotFound("certificate_not_found", f"No certificate numbered {certificate_number}.")
    return certificate_view(certificate)


def certificates_for_candidate(session: Session, candidate_id: str) -> CertificateList:
    rows = session.scalars(
        select(Certificate).where(Certificate.candidate_id == candidate_id).order_by(Certificate.created_at)
    ).all()
    return CertificateList(certificates=[certificate_view(c) for c in rows])


def history(session: Session, certificate: Certificate) -> CertificateHistoryView:
    entries = session.scalars(select(CertificateHistory).where(
        CertificateHistory.certificate_id == certificate.certificate_id).order_by(CertificateHistory.version))
    return CertificateHistoryView(certificate_id=certificate.certificate_id, entries=[
        HistoryEntry(version=e.version, at=e.at, action=e.action, status=e.status, actor=e.actor,
                     detail=json.loads(e.detail) if e.detail else None) for e in entries])
