"""Payments service layer. Each function runs inside the caller's unit of work (one transaction); calls to
the provider that must not be rolled back with our data (refunds) are made between transactions by the
service."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from credence_common.calendar import business_day
from credence_common.contracts.envelope import utcnow
from credence_common.contracts.errors import (
    Conflict,
    CredenceError,
    Forbidden,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
)
from credence_common.contracts.events import (
    CertificateAwaitingPaymentV1,
    CertificateRefundRequestedV1,
    FeeNoLongerDueV1,
    PaymentRefundedV1,
    PaymentSucceededV1,
    RefundedDue,
    ReplacementAwaitingPaymentV1,
)
from credence_common.contracts.payments import (
    CreatePaymentOrder,
    DueList,
    DueView,
    FeeSchedule,
    FeeView,
    IncidentList,
    IncidentView,
    InvoiceRecord,
    JsapiPayParams,
    MismatchView,
    NotificationAcknowledgement,
    OpenDue,
    OrderItemView,
    PaymentOrderList,
    PaymentOrderView,
    ReconciliationReport,
    RefundList,
    RefundView,
    RequestRefund,
    SetFee,
    StaffOrderView,
)
from credence_common.persistence.messaging import Outbox
from credence_common.security.masking import mask_name
from services.payments import domain
from services.payments.domain.providers import PROVIDER_ZONE, PaymentProvider, ProviderError, ProviderRefund
from services.payments.models import (
    Fee,
    NotificationNonce,
    OutboxEvent,
    PaymentDue,
    PaymentIncident,
    PaymentOrder,
    PaymentOrderItem,
    ProviderPayment,
    Refund,
)

log = logging.getLogger(__name__)
outbox = Outbox(OutboxEvent)

# Refusals after which money may sit at the provider without a paid order here: a person must look.
FLAGGED_CODES = frozenset({"order_not_found", "order_closed", "order_already_paid", "amount_mismatch",
                           "transaction_already_used", "currency_mismatch", "merchant_mismatch", "refund_refused",
                           # WeChat Pay: a notification signed by it that our APIv3 key cannot open (a key rotated on
                           # one side only), or signed by a platform key we do not have yet
                           "undecryptable_resource", "unknown_platform_serial",
                           # WeChat Pay's ABNORMAL refund: made, but it could not reach the payer (a cancelled or
                           # frozen card); settled by hand at the merchant platform, never by refunding again
                           "refund_abnormal"})
MAX_ORDER_FEN = 1_000_000_000  # ten million yuan: far above any real order, far below a 32-bit column's end


@dataclass(frozen=True)
class PaymentRules:
    order_ttl_seconds: int = 1800
    refund_promise_working_days: int = domain.REFUND_PROMISE_WORKING_DAYS
    holidays: tuple[date, ...] = ()
    # a refund the provider is still making is asked about this long after it was accepted, then after twice as
    # long each time, never waiting longer than the bound (its notification may never come)
    refund_check_first_seconds: float = 5.0
    refund_check_max_seconds: float = 3600.0

    def refund_check_delay(self, checks_done: int) -> timedelta:
        return timedelta(seconds=min(self.refund_check_first_seconds * 2 ** min(checks_done, 30),
                                     self.refund_check_max_seconds))


@dataclass
class IncidentContext:
    """What a refused step had learned before it was refused, for the incident record."""

    order_number: str | None = None
    provider_transaction_id: str | None = None
    body_sha256: str | None = None
    detail: dict = field(default_factory=dict)


# --- the fee schedule --------------------------------------------------------------------------------

def fee_schedule(session: Session) -> FeeSchedule:
    fees = session.scalars(select(Fee).order_by(Fee.fee_code)).all()
    return FeeSchedule(fees=[FeeView.model_validate(fee, from_attributes=True) for fee in fees])


def set_fee(session: Session, staff_id: str, fee_code: str, change: SetFee) -> FeeView:
    fee = session.get(Fee, fee_code, with_for_update=True)
    now = utcnow()
    if fee is None:
        fee = Fee(fee_code=fee_code)
        session.add(fee)
    fee.description, fee.amount_fen, fee.updated_at, fee.updated_by = (change.description, change.amount_fen,
                                                                       now, staff_id)
    log.info("fee %s set to %s fen by %s", fee_code, change.amount_fen, staff_id)
    return FeeView.model_validate(fee, from_attributes=True)


# --- dues ---------------------------------------------------------------------------------------------

def due_view(due: PaymentDue) -> DueView:
    return DueView.model_validate(due, from_attributes=True)


def open_due(session: Session, request: OpenDue) -> DueView:
    """One due per (purpose, reference), however often it is asked for; priced from the fee schedule."""
    existing = session.scalars(select(PaymentDue).where(PaymentDue.purpose == request.purpose,
                                                        PaymentDue.reference_id == request.reference_id)).first()
    if existing is not None:
        return due_view(existing)
    fee = session.get(Fee, request.purpose)
    if fee is None:
        raise NotFound("unknown_fee", f"There is no fee {request.purpose!r} in the fee schedule.")
    due = PaymentDue(due_id=str(uuid.uuid4()), purpose=request.purpose, reference_id=request.reference_id,
                     candidate_id=request.candidate_id, payer_kind=request.payer_kind, payer_id=request.payer_id,
                     amount_fen=fee.amount_fen, status=domain.DUE_OPEN, created_at=utcnow())
    session.add(due)
    session.flush()
    return due_view(due)


def open_certificate_fee_due(session: Session, event: CertificateAwaitingPaymentV1) -> None:
    """A certificate fee, or a reissue / correction fee (then the reference is the application)."""
    open_due(session, OpenDue(purpose=event.purpose, reference_id=event.reference_id or event.certificate_id,
                              candidate_id=event.candidate_id, payer_kind=event.payer_kind, payer_id=event.payer_id))


def open_replacement_fee_due(session: Session, event: ReplacementAwaitingPaymentV1) -> None:
    """A reissue or correction fee: the due's reference is the application."""
    open_due(session, OpenDue(purpose=event.purpose, reference_id=event.application_id,
                              candidate_id=event.candidate_id, payer_kind=event.payer_kind, payer_id=event.payer_id))


def cancel_due(session: Session, event: FeeNoLongerDueV1, provider: PaymentProvider) -> None:
    """What the due was for ended unpaid. An open order holding only this due is ended first, asking the provider
    (a payment made meanwhile is applied: the due is then paid, stays paid, and certificates asks for the refund
    when the payment reaches it). An open order holding other dues too (an institution paying for a class) stays
    open for them: this due is marked cancelled, and if the order is paid all the same, certificates refunds this
    student's share. If the due has not arrived yet (events crossed), it is recorded cancelled, so the late request
    to open it finds it cancelled."""
    query = select(PaymentDue).where(PaymentDue.purpose == event.purpose, PaymentDue.reference_id == event.reference_id)
    due = session.scalars(query).first()
    if due is not None and due.open_order_number:
        # the order first, then the due: paying and closing an order lock them in that order too
        find_order(session, due.open_order_number, lock=True)
    due = session.scalars(query.with_for_update().execution_options(populate_existing=True)).first()
    if due is None:
        fee = session.get(Fee, event.purpose)
        session.add(PaymentDue(due_id=str(uuid.uuid4()), purpose=event.purpose, reference_id=event.reference_id,
                               candidate_id=event.candidate_id, payer_kind="candidate", payer_id=event.candidate_id,
                               amount_fen=fee.amount_fen if fee else 0, status=domain.DUE_CANCELLED,
                               created_at=utcnow()))
        return
    if due.status != domain.DUE_OPEN:
        return
    if due.open_order_number:
        order = find_order(session, due.open_order_number, lock=True)
        if order.status == domain.CREATED and len(_due_ids(session, order.order_number)) == 1:
            end_unpaid_order(session, provider, order, domain.CLOSED, utcnow(), "service:certificates")
            session.refresh(due)
        if due.status != domain.DUE_OPEN:  # the provider said it was paid
            return
    due.status = domain.DUE_CANCELLED
    log.info("due %s (%s) cancelled: %s", due.due_id, due.purpose, event.reason)


def refund_for_certificates(session: Session, event: CertificateRefundRequestedV1, rules: PaymentRules) -> None:
    """Certificates will not use money it was paid: refund it once (the request id is the refund's key, so a
    redelivered event finds the same refund). A refund that cannot be made (the order was refunded by hand
    meanwhile) is recorded and flagged for a person instead of blocking the queue for ever."""
    context = IncidentContext(order_number=event.order_number, detail={"refund_request_id": event.refund_request_id})
    # what was paid for is one due of the order (an institution's order pays many): the refund names it, so it
    # never takes more than that due's money
    due_id = session.scalar(
        select(PaymentOrderItem.due_id).join(PaymentDue, PaymentDue.due_id == PaymentOrderItem.due_id)
        .where(PaymentOrderItem.order_number == event.order_number, PaymentDue.reference_id == event.reference_id))
    try:
        request_refund(session, rules, "service:certificates", RequestRefund(
            order_number=event.order_number, amount_fen=event.amount_fen, reason=event.reason[:200],
            reference_id=event.reference_id, due_id=due_id, request_key=event.refund_request_id[:64]), context)
    except (Conflict, InvalidInput, NotFound) as refused:
        if refused.code == "concurrent_change":
            raise
        record_incident(session, refused.code, f"certificates asked for a refund that cannot be made: "
                        f"{refused.message}", "service:certificates", context, flagged=True)


def dues_for_payer(session: Session, payer_kind: str, payer_id: str) -> DueList:
    dues = session.scalars(select(PaymentDue).where(PaymentDue.payer_kind == payer_kind,
                                                    PaymentDue.payer_id == payer_id)
                           .order_by(PaymentDue.created_at)).all()
    refunded = dict(session.execute(
        select(Refund.due_id, func.sum(Refund.amount_fen))
        .join(PaymentDue, PaymentDue.due_id == Refund.due_id)
        .where(PaymentDue.payer_kind == payer_kind, PaymentDue.payer_id == payer_id, Refund.status == "succeeded")
        .group_by(Refund.due_id)).all())
    return DueList(dues=[due_view(due).model_copy(update={"refunded_fen": int(refunded.get(due.due_id) or 0)})
                         for due in dues])


# --- orders -------------------------------------------------------------------------------------------

def order_items(session: Session, order_number: str) -> list[OrderItemView]:
    rows = session.execute(
        select(PaymentOrderItem.due_id, PaymentDue.purpose, PaymentDue.reference_id, PaymentDue.candidate_id,
               PaymentOrderItem.amount_fen)
        .join(PaymentDue, PaymentDue.due_id == PaymentOrderItem.due_id)
        .where(PaymentOrderItem.order_number == order_number).order_by(PaymentOrderItem.due_id)).all()
    return [OrderItemView(due_id=r[0], purpose=r[1], reference_id=r[2], candidate_id=r[3], amount_fen=r[4])
            for r in rows]


def _due_ids(session: Session, order_number: str) -> list[str]:
    return sorted(item.due_id for item in order_items(session, order_number))


def order_view(session: Session, order: PaymentOrder) -> PaymentOrderView:
    return PaymentOrderView.model_validate({**_order_fields(order), "items": order_items(session, order.order_number)})


def staff_order_view(session: Session, order: PaymentOrder) -> StaffOrderView:
    return StaffOrderView.model_validate({**_order_fields(order, staff=True),
                                          "items": order_items(session, order.order_number),
                                          "payer_id": order.payer_id, "provider": order.provider,
                                          "provider_transaction_id": order.provider_transaction_id})


def invoice_record(order: PaymentOrder, masked: bool = False) -> InvoiceRecord | None:
    """The order's one invoice, when the payer asked for one: numbered and issued once the order is paid.
    ``masked``: a candidate's invoice is made out to their own name, personal data that an answer shows masked
    (an institution's is made out to the institution, which is not)."""
    if not order.invoice_title:
        return None
    paid = order.status in domain.PAID_STATES
    title = mask_name(order.invoice_title) if masked else order.invoice_title
    return InvoiceRecord(invoice_number=domain.invoice_number(order.order_number) if paid else None,
                         title=title, tax_number=order.invoice_tax_number, amount_fen=order.amount_fen,
                         refunded_fen=order.refunded_fen, issued_at=order.paid_at if paid else None)


def _order_fields(order: PaymentOrder, staff: bool = False) -> dict:
    fields = {name: getattr(order, name) for name in (
        "order_number", "payer_kind", "amount_fen", "currency", "status", "pay_url", "pay_method", "refunded_fen",
        "created_at", "expires_at", "paid_at", "ended_at")}
    return {**fields, "invoice": invoice_record(order, masked=not staff and order.payer_kind == "candidate")}


def key_digest(idempotency_key: str) -> str:
    """An order's Idempotency-Key is only compared, so only its digest is kept: the client's key also seals the
    gateway's stored answers (credence_common/persistence/idempotency.py) and is not for a database reader to see."""
    return hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()


def create_order(session: Session, provider: PaymentProvider, rules: PaymentRules, payer_kind: str, payer_id: str,
                 request: CreatePaymentOrder, idempotency_key: str | None) -> PaymentOrderView:
    """One order for the payer's chosen dues. The same idempotency key, or the same dues while their order
    is still open, returns that order: a double click or a retried request never opens a second one. A JSAPI
    order (paying inside WeChat) is opened at WeChat Pay for the payer's openid, which is used for that call only:
    never stored nor logged; its answer, and every later one returning it, carries the wx.requestPayment
    parameters, signed afresh."""
    if request.method == "jsapi" and not hasattr(provider, "prepare_jsapi"):
        raise InvalidInput("payment_method_unavailable", f"The payment provider {provider.name!r} does not offer "
                           "JSAPI payment (paying inside WeChat); use method native.")
    if idempotency_key:
        earlier = session.scalars(select(PaymentOrder).where(
            PaymentOrder.payer_kind == payer_kind, PaymentOrder.payer_id == payer_id,
            PaymentOrder.idempotency_key == key_digest(idempotency_key))).first()
        if earlier is not None:
            if _due_ids(session, earlier.order_number) != sorted(request.due_ids):
                raise Conflict("idempotency_key_reused", "This Idempotency-Key was used for an order of other "
                               "dues; use a new key for a new order.")
            return _opened_view(session, provider, earlier, request)
    # read without a lock: none may be held while the provider is asked below. What is checked here is settled
    # again by the conditional claim after it (open, and in no open order), which a racing request loses.
    dues = session.scalars(select(PaymentDue).where(PaymentDue.due_id.in_(request.due_ids))).all()
    found = {due.due_id: due for due in dues}
    missing = [due_id for due_id in request.due_ids if due_id not in found]
    if missing:
        raise NotFound("due_not_found", f"No due {missing[0]}.")
    for due in dues:
        if due.payer_kind != payer_kind or due.payer_id != payer_id:
            code = "not_your_candidate" if payer_kind == "institution" else "not_your_due"
            raise Forbidden(code, f"Due {due.due_id} is not yours to pay: it is for {due.payer_kind} payment "
                            "by someone else.")
        if due.status == domain.DUE_PAID:
            raise Conflict("due_already_paid", f"Due {due.due_id} is already paid (order {due.paid_order_number}).")
        if due.status == domain.DUE_CANCELLED:
            raise Conflict("due_cancelled", f"Due {due.due_id} was cancelled; nothing to pay.")
    open_orders = {due.open_order_number for due in dues if due.open_order_number}
    if open_orders:
        if len(open_orders) == 1:
            current = session.get(PaymentOrder, open_orders.pop())
            if _due_ids(session, current.order_number) == sorted(request.due_ids):
                return _opened_view(session, provider, current, request)
        raise Conflict("due_in_open_order", "Some of these dues are already in an open order; pay or close that "
                       "order first.")
    amount_fen = sum(due.amount_fen for due in dues)
    if amount_fen > MAX_ORDER_FEN:
        raise InvalidInput("order_too_large", f"One order may be for at most {MAX_ORDER_FEN} fen; split the dues "
                           "over several orders.")
    now = utcnow()
    order_number = domain.new_order_number(now)
    expires_at = now + timedelta(seconds=rules.order_ttl_seconds)
    purposes = ", ".join(sorted({due.purpose for due in dues}))
    # Before our first write or lock: the provider is another system (up to WECHATPAY_TIMEOUT_SECONDS), and this
    # transaction holds no row lock while we wait for it (the dues were read without one; on SQLite nothing is
    # written yet). A request that then loses the race below leaves an unpaid order at the provider, which
    # expires there.
    pay_url, prepay_id = "", None
    if request.method == "jsapi":
        prepay_id = _open_jsapi(provider, order_number, amount_fen, f"Credence {purposes}", expires_at,
                                request.payer_openid)
    else:
        pay_url = provider.prepare(order_number, amount_fen, f"Credence {purposes}", expires_at)
    claimed = session.execute(
        update(PaymentDue).where(PaymentDue.due_id.in_(request.due_ids), PaymentDue.open_order_number.is_(None),
                                 PaymentDue.status == domain.DUE_OPEN)
        .values(open_order_number=order_number).execution_options(synchronize_session=False)).rowcount
    if claimed != len(request.due_ids):
        raise Conflict("concurrent_change", "Another request is opening an order for these dues; try again.")
    order = PaymentOrder(order_number=order_number, payer_kind=payer_kind, payer_id=payer_id,
                         idempotency_key=key_digest(idempotency_key or uuid.uuid4().hex), amount_fen=amount_fen,
                         currency=domain.CURRENCY, status=domain.CREATED, provider=provider.name, pay_url=pay_url,
                         pay_method=request.method, prepay_id=prepay_id,
                         refunded_fen=0, refund_reserved_fen=0, created_at=now, expires_at=expires_at,
                         invoice_title=request.invoice.title if request.invoice else None,
                         invoice_tax_number=request.invoice.tax_number if request.invoice else None)
    session.add(order)
    session.flush()
    session.add_all(PaymentOrderItem(order_number=order_number, due_id=due.due_id, amount_fen=due.amount_fen)
                    for due in dues)
    session.flush()
    return _opened_view(session, provider, order, request)


def _open_jsapi(provider: PaymentProvider, order_number: str, amount_fen: int, description: str,
                expires_at: datetime, openid: str) -> str:
    """The prepay_id of a JSAPI order. Like a native order's, a provider that cannot be reached is the payer's "try
    again in a moment" (503) and nothing is written; a refusal for good (WeChat Pay's PARAM_ERROR: an openid that is
    not of our AppID) is the payer's 422. The openid is in neither message."""
    try:
        return provider.prepare_jsapi(order_number, amount_fen, description, expires_at, openid).prepay_id
    except ProviderError as error:
        if error.retryable:
            raise ServiceUnavailable("payment_provider_unavailable", f"WeChat Pay could not open the order "
                                     f"({error.code}); try again in a moment.") from None
        raise InvalidInput("jsapi_order_refused", f"WeChat Pay refused to open the order ({error.code}); is "
                           "payer_openid the payer's openid for our AppID?") from None


def _opened_view(session: Session, provider: PaymentProvider, order: PaymentOrder,
                 request: CreatePaymentOrder) -> PaymentOrderView:
    """The answer to opening an order (or to asking again): a JSAPI order still open carries its wx.requestPayment
    parameters. Asking for the open order of these dues with the other method is refused: WeChat Pay keeps one
    trade type per order, so the payer closes it first (or pays it as opened)."""
    if order.status == domain.CREATED and order.pay_method != request.method:
        raise Conflict("order_open_with_other_method", f"Order {order.order_number} for these dues is open for "
                       f"{order.pay_method} payment; pay it that way, or close it and open a {request.method} one.")
    view = order_view(session, order)
    if order.status == domain.CREATED and order.pay_method == "jsapi" and order.prepay_id:
        view.jsapi_pay_params = JsapiPayParams(**provider.jsapi_pay_params(order.prepay_id))
    return view


def find_order(session: Session, order_number: str, lock: bool = False) -> PaymentOrder:
    order = session.get(PaymentOrder, order_number, with_for_update=lock)
    if order is None:
        raise NotFound("order_not_found", f"No payment order {order_number}.")
    return order


def order_for(session: Session, role: str, subject: str, order_number: str) -> dict:
    order = find_order(session, order_number)
    if role == "staff":
        return staff_order_view(session, order).model_dump(mode="json")
    if order.payer_kind != role or order.payer_id != subject:
        raise NotFound("order_not_found", f"No payment order {order_number}.")  # not yours = not there
    return order_view(session, order).model_dump(mode="json")


def orders_for_payer(session: Session, payer_kind: str, payer_id: str) -> PaymentOrderList:
    rows = session.scalars(
        select(PaymentOrder).where(PaymentOrder.payer_kind == payer_kind, PaymentOrder.payer_id == payer_id)
        .order_by(PaymentOrder.created_at)).all()
    return PaymentOrderList(orders=[order_view(session, order) for order in rows])


def end_unpaid_order(session: Session, provider: PaymentProvider, order: PaymentOrder, ending: str,
                     now: datetime, actor: str) -> None:
    """Close or expire an unpaid order. The provider closes its side first and tells us how the trade stands:
    a payment whose notification has not arrived (or that raced the closing) is credited instead of lost; a
    payment we cannot credit (a wrong amount) is flagged for a refund and the order ends anyway, so it
    neither stays open forever nor holds its dues."""
    trade = provider.close(order.order_number)
    if trade is not None and trade.paid:
        context = IncidentContext(order.order_number, trade.transaction_id)
        try:
            apply_payment(session, order, provider, trade.transaction_id, trade.amount_fen, "query", now, context,
                          trade.paid_at)
            return
        except CredenceError as refused:
            if refused.code == "concurrent_change":
                raise
            # apply_payment refuses before it writes anything, so this transaction is still clean
            record_incident(session, refused.code, refused.message, actor, context)
    ended = session.execute(update(PaymentOrder).where(PaymentOrder.order_number == order.order_number,
                                                       PaymentOrder.status == domain.CREATED)
                            .values(status=ending, ended_at=now).execution_options(synchronize_session=False))
    if ended.rowcount != 1:
        raise Conflict("concurrent_change", "The order changed while it was being closed; look again.")
    session.execute(update(PaymentDue).where(PaymentDue.open_order_number == order.order_number)
                    .values(open_order_number=None).execution_options(synchronize_session=False))
    session.refresh(order)


def close_order(session: Session, provider: PaymentProvider, role: str, subject: str,
                order_number: str) -> PaymentOrderView:
    order = find_order(session, order_number, lock=True)
    if role != "staff" and (order.payer_kind != role or order.payer_id != subject):
        raise NotFound("order_not_found", f"No payment order {order_number}.")
    if order.status != domain.CREATED:
        raise Conflict("order_not_open", f"Order {order_number} is {order.status}; only an unpaid order can be "
                       "closed.")
    end_unpaid_order(session, provider, order, domain.CLOSED, utcnow(), f"{role}:{subject}")
    return order_view(session, order)


def expired_order_numbers(session: Session, now: datetime, limit: int = 100) -> list[str]:
    return list(session.scalars(select(PaymentOrder.order_number).where(
        PaymentOrder.status == domain.CREATED, PaymentOrder.expires_at < now)
        .order_by(PaymentOrder.expires_at).limit(limit)))


def expire_order(session: Session, provider: PaymentProvider, order_number: str, now: datetime) -> None:
    order = find_order(session, order_number, lock=True)
    if order.status == domain.CREATED and order.expires_at < now:
        end_unpaid_order(session, provider, order, domain.EXPIRED, now, "timer:expire_orders")


def prune_nonces(session: Session, before: datetime) -> None:
    """A nonce older than the timestamp tolerance cannot come back: its notification would be stale."""
    session.execute(delete(NotificationNonce).where(NotificationNonce.received_at < before))


# --- crediting a payment ------------------------------------------------------------------------------

def handle_notification(session: Session, provider: PaymentProvider, raw_body: bytes, headers: Mapping[str, str],
                        context: IncidentContext) -> NotificationAcknowledgement:
    """A provider says an order was paid. The signature on the raw bytes is checked before anything in
    them is read; then the merchant, the currency, the order, the amount; then the order moves from
    created to paid once, under the unique (provider, transaction id) key."""
    now = utcnow()
    context.body_sha256 = hashlib.sha256(raw_body).hexdigest()
    notification = provider.verify_notification(raw_body, headers, now)
    context.order_number = notification.order_number
    context.provider_transaction_id = notification.transaction_id
    if not remember_nonce(session, provider.name, notification.nonce, now, context.body_sha256):
        return answer_replay(session, provider, notification, context)
    if notification.merchant_id != provider.merchant_id:
        raise InvalidInput("merchant_mismatch", "The notification is for another merchant.")
    if notification.refund_number is not None:
        return handle_refund_notification(session, provider, notification, context)
    if notification.currency != domain.CURRENCY:
        raise InvalidInput("currency_mismatch", f"The notification is in {notification.currency}, not "
                           f"{domain.CURRENCY}.")
    order = session.get(PaymentOrder, notification.order_number, with_for_update=True)
    if order is None:
        raise NotFound("order_not_found", f"No payment order {notification.order_number}.")
    if notification.trade_state != "SUCCESS":
        return NotificationAcknowledgement(order_number=order.order_number, status=order.status)
    return apply_payment(session, order, provider, notification.transaction_id, notification.amount_fen,
                         "notification", now, context, notification.paid_at)


def handle_refund_notification(session: Session, provider: PaymentProvider, notification,
                               context: IncidentContext) -> NotificationAcknowledgement:
    """The provider says how a refund we submitted ended (WeChat Pay's REFUND.SUCCESS / ABNORMAL / CLOSED). Applied
    once: a refund already completed (by the submitting worker's answer, or an earlier copy of this notification)
    changes nothing, so the notification and the answer may arrive in either order. ABNORMAL is not a failure: the
    money left us and waits at WeChat Pay, so the refund is held for a person (hold_abnormal_refund), its amount
    still reserved."""
    context.detail = {"refund_number": notification.refund_number}
    refund = session.get(Refund, notification.refund_number)
    if refund is None or refund.order_number != notification.order_number:
        raise NotFound("refund_not_found", f"No refund {notification.refund_number} of order "
                       f"{notification.order_number}.")
    if notification.refund_status == "SUCCESS" and notification.amount_fen != refund.amount_fen:
        context.detail = {"refund_number": refund.refund_number, "refund_amount_fen": refund.amount_fen,
                          "notified_amount_fen": notification.amount_fen}
        raise InvalidInput("amount_mismatch", f"The provider reports {notification.amount_fen} fen refunded but "
                           f"refund {refund.refund_number} is for {refund.amount_fen} fen.")
    if notification.refund_status == "SUCCESS":
        changed = complete_refund(session, provider.name, refund.refund_number, notification.provider_refund_id)
    elif notification.refund_status == "ABNORMAL":
        changed = hold_abnormal_refund(session, refund.refund_number, notification.provider_refund_id,
                                       "ABNORMAL: the provider's refund notification", f"provider:{provider.name}",
                                       context)
    else:
        changed = fail_refund(session, refund.refund_number, f"{notification.refund_status}: the provider's refund "
                              "notification", context)
    order = find_order(session, refund.order_number)
    session.refresh(order)
    return NotificationAcknowledgement(order_number=order.order_number, status=order.status, duplicate=not changed)


def remember_nonce(session: Session, provider_name: str, nonce: str, now: datetime,
                   body_sha256: str | None = None) -> bool:
    """False when the nonce was seen before. An INSERT that skips a conflict, inside the transaction: a
    savepoint would not do on SQLite, where pysqlite commits a released savepoint on its own. The nonce is
    remembered only if the notification's transaction commits (a refused one is rolled back with it), so a
    remembered nonce is one whose notification was answered 200."""
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    inserted = session.execute(insert(NotificationNonce).values(provider=provider_name, nonce=nonce, received_at=now,
                                                                body_sha256=body_sha256)
                               .on_conflict_do_nothing())
    return inserted.rowcount == 1


def answer_replay(session: Session, provider: PaymentProvider, notification,
                  context: IncidentContext) -> NotificationAcknowledgement:
    """An exact copy of a notification answered before. WeChat Pay sends a notification again until it is
    answered 2xx (for up to a day), and an answer lost on the way back makes it send the very same bytes again:
    refusing them would only keep it retrying. So a copy whose effect is already applied (the order paid by this
    transaction, the refund ended as it says) is answered as done, ``duplicate: true``, and changes nothing: all
    a captured notification replayed by someone else gets is that 200. The same nonce on another body, or a copy
    whose effect is not there, stays refused (409 ``replayed_notification``, recorded)."""
    seen = session.get(NotificationNonce, (provider.name, notification.nonce))
    if seen is not None and seen.body_sha256 is not None and seen.body_sha256 != context.body_sha256:
        raise Conflict("replayed_notification", "This notification's nonce came before with another body; it is "
                       "not a copy of a notification received before and is refused.")
    applied = _applied_notification(session, provider, notification)
    if applied is None:
        raise Conflict("replayed_notification", "This exact notification was received before and what it says "
                       "is not what happened; a copy of it changes nothing.")
    log.info("notification %s from %s for %s received again; already applied", notification.nonce[:16],
             provider.name, notification.order_number)
    return applied


def _applied_notification(session: Session, provider: PaymentProvider,
                          notification) -> NotificationAcknowledgement | None:
    """The answer to a notification whose effect is already in our ledger, or None."""
    order = session.get(PaymentOrder, notification.order_number)
    if order is None:
        return None
    if notification.refund_number is not None:
        refund = session.get(Refund, notification.refund_number)
        if refund is None or refund.order_number != order.order_number:
            return None
        if notification.refund_status == "SUCCESS":
            done = refund.status == "succeeded" and refund.provider_refund_id == notification.provider_refund_id
        elif notification.refund_status == "ABNORMAL":  # held, or settled by hand since
            done = refund.abnormal_at is not None
        else:
            done = refund.status == "failed"
        return NotificationAcknowledgement(order_number=order.order_number, status=order.status,
                                           duplicate=True) if done else None
    if notification.trade_state != "SUCCESS":  # it was answered without changing anything: so is its copy
        return NotificationAcknowledgement(order_number=order.order_number, status=order.status, duplicate=True)
    credited = session.scalars(select(ProviderPayment).where(
        ProviderPayment.provider == provider.name,
        ProviderPayment.provider_transaction_id == notification.transaction_id)).first()
    if (credited is None or credited.order_number != order.order_number
            or credited.amount_fen != notification.amount_fen):
        return None
    return NotificationAcknowledgement(order_number=order.order_number, status=order.status, duplicate=True)


def apply_payment(session: Session, order: PaymentOrder, provider: PaymentProvider, transaction_id: str,
                  amount_fen: int, source: str, now: datetime, context: IncidentContext,
                  paid_at_provider: datetime | None = None) -> NotificationAcknowledgement:
    credited = session.scalars(select(ProviderPayment).where(
        ProviderPayment.provider == provider.name, ProviderPayment.provider_transaction_id == transaction_id)).first()
    if credited is not None:
        if credited.order_number == order.order_number:
            return NotificationAcknowledgement(order_number=order.order_number, status=order.status, duplicate=True)
        raise Conflict("transaction_already_used", "This provider transaction already paid another order.")
    if order.status in domain.PAID_STATES:
        raise Conflict("order_already_paid", f"Order {order.order_number} was already paid by another transaction; "
                       "this second payment must be refunded.")
    if order.status in domain.ENDED_UNPAID:
        raise Conflict("order_closed", f"Order {order.order_number} is {order.status}; the payment is not "
                       "credited and must be refunded.")
    if not domain.check_amount(order.amount_fen, amount_fen):
        context.detail = {"order_amount_fen": order.amount_fen, "paid_amount_fen": amount_fen}
        raise InvalidInput("amount_mismatch", f"The provider reports {amount_fen} fen paid but the order is for "
                           f"{order.amount_fen} fen; the order stays unpaid.")
    paid = session.execute(update(PaymentOrder).where(PaymentOrder.order_number == order.order_number,
                                                      PaymentOrder.status == domain.CREATED)
                           .values(status=domain.PAID, provider_transaction_id=transaction_id, paid_at=now)
                           .execution_options(synchronize_session=False))
    if paid.rowcount != 1:
        raise Conflict("concurrent_change", "The order changed while the payment was applied; try again.")
    session.add(ProviderPayment(provider=provider.name, provider_transaction_id=transaction_id,
                                order_number=order.order_number, amount_fen=amount_fen, credited_at=now,
                                paid_at_provider=paid_at_provider, source=source))
    items = session.execute(select(PaymentDue).join(PaymentOrderItem, PaymentOrderItem.due_id == PaymentDue.due_id)
                            .where(PaymentOrderItem.order_number == order.order_number)).scalars().all()
    for due in items:
        due.status, due.paid_order_number, due.open_order_number = domain.DUE_PAID, order.order_number, None
        outbox.add(session, PaymentSucceededV1(
            order_number=order.order_number, due_id=due.due_id, purpose=due.purpose, reference_id=due.reference_id,
            candidate_id=due.candidate_id, payer_kind=order.payer_kind, payer_id=order.payer_id,
            amount_fen=due.amount_fen, order_amount_fen=order.amount_fen, provider=provider.name,
            provider_transaction_id=transaction_id, paid_at=now), subject=due.due_id)
    session.flush()
    session.refresh(order)
    return NotificationAcknowledgement(order_number=order.order_number, status=order.status)


# --- incidents ----------------------------------------------------------------------------------------

def record_incident(session: Session, code: str, message: str, actor: str, context: IncidentContext,
                    flagged: bool | None = None) -> None:
    session.add(PaymentIncident(occurred_at=utcnow(), code=code, message=message[:300], actor=actor[:80],
                                order_number=context.order_number,
                                provider_transaction_id=context.provider_transaction_id,
                                body_sha256=context.body_sha256,
                                flagged=code in FLAGGED_CODES if flagged is None else flagged,
                                detail=str(context.detail) if context.detail else None))
    log.warning("payments refused %s (%s) for %s: %s", code, actor, context.order_number or "-", message)


def incidents(session: Session, flagged_only: bool, limit: int = 200) -> IncidentList:
    query = select(PaymentIncident).order_by(PaymentIncident.incident_id.desc()).limit(limit)
    if flagged_only:
        query = query.where(PaymentIncident.flagged.is_(True))
    return IncidentList(incidents=[IncidentView.model_validate(i, from_attributes=True)
                                   for i in session.scalars(query)])


# --- refunds ------------------------------------------------------------------------------------------

def refund_view(refund: Refund, today: date | None = None) -> RefundView:
    today = today or business_day(utcnow())
    view = RefundView.model_validate(refund, from_attributes=True)
    view.overdue = refund.status != "succeeded" and refund.promised_by < today
    return view


def request_refund(session: Session, rules: PaymentRules, requested_by: str, request: RequestRefund,
                   context: IncidentContext) -> RefundView:
    """A refund along the original payment path, numbered once here and reused on every retry. The amount is
    reserved on the order with a conditional update, so requests racing each other (on any database) can
    never together ask for more than was paid."""
    context.order_number = request.order_number
    order = find_order(session, request.order_number, lock=True)  # first: a double click waits here
    earlier = session.scalars(select(Refund).where(Refund.requested_by == requested_by,
                                                   Refund.request_key == request.request_key)).first()
    if earlier is not None:
        if (earlier.order_number, earlier.amount_fen, earlier.due_id) != (request.order_number, request.amount_fen,
                                                                          request.due_id):
            raise Conflict("request_key_reused", "This request key was used for another refund.")
        return refund_view(earlier)
    if order.status not in domain.PAID_STATES:
        raise Conflict("order_not_paid", f"Order {order.order_number} is {order.status}; there is nothing to refund.")
    reference_id = request.reference_id
    if request.due_id is not None:
        due_reference = _check_due_refund(session, order, request, context)
        reference_id = reference_id or due_reference
    reserved = session.execute(
        update(PaymentOrder).where(
            PaymentOrder.order_number == order.order_number, PaymentOrder.status.in_(domain.PAID_STATES),
            PaymentOrder.refunded_fen + PaymentOrder.refund_reserved_fen + request.amount_fen
            <= PaymentOrder.amount_fen)
        .values(refund_reserved_fen=PaymentOrder.refund_reserved_fen + request.amount_fen)
        .execution_options(synchronize_session=False))
    if reserved.rowcount != 1:
        session.refresh(order)
        refundable = domain.refundable_fen(order.amount_fen, order.refunded_fen + order.refund_reserved_fen)
        context.detail = {"requested_fen": request.amount_fen, "refundable_fen": refundable}
        raise InvalidInput("refund_exceeds_payment", f"At most {refundable} fen of order {order.order_number} can "
                           f"still be refunded ({order.amount_fen} paid, {order.refunded_fen} refunded, "
                           f"{order.refund_reserved_fen} being refunded).")
    now = utcnow()
    refund = Refund(refund_number=domain.new_refund_number(now), order_number=order.order_number,
                    amount_fen=request.amount_fen, reason=request.reason, reference_id=reference_id,
                    due_id=request.due_id, requested_by=requested_by, request_key=request.request_key,
                    status="pending", attempts=0,
                    requested_at=now, promised_by=domain.add_working_days(business_day(now),
                                                                         rules.refund_promise_working_days,
                                                                         rules.holidays))
    session.add(refund)
    session.flush()
    return refund_view(refund)


def _check_due_refund(session: Session, order: PaymentOrder, request: RequestRefund,
                      context: IncidentContext) -> str:
    """A refund of one due of the order (one student's fee out of an institution's order): the due must be one
    the order paid, and its refunds (pending or done) never exceed its amount; two such requests are decided one
    after the other. Returns the due's reference (the certificate)."""
    # PostgreSQL: the order's row lock (taken by the caller) serialises refunds of it. SQLite has no row locks, and
    # pysqlite reads outside a transaction until its first write: this write that changes nothing takes the
    # database's write lock, so the sum below sees every refund committed before it and none is added until this
    # transaction ends, even with several payments processes on one file. Refusing after it is safe: it changed
    # nothing, so a caller that records the refusal in this transaction keeps no stray reservation.
    session.execute(update(PaymentOrder).where(PaymentOrder.order_number == order.order_number)
                    .values(refund_reserved_fen=PaymentOrder.refund_reserved_fen)
                    .execution_options(synchronize_session=False))
    item = session.get(PaymentOrderItem, (order.order_number, request.due_id))
    if item is None:
        context.detail = {"due_id": request.due_id}
        raise InvalidInput("due_not_in_order", f"Order {order.order_number} did not pay due {request.due_id}.")
    taken = session.scalar(select(func.coalesce(func.sum(Refund.amount_fen), 0)).where(
        Refund.order_number == order.order_number, Refund.due_id == request.due_id, Refund.status != "failed"))
    refundable = domain.refundable_fen(item.amount_fen, int(taken))
    if request.amount_fen > refundable:
        context.detail = {"due_id": request.due_id, "requested_fen": request.amount_fen, "refundable_fen": refundable}
        raise InvalidInput("refund_exceeds_due", f"At most {refundable} fen of due {request.due_id} can still be "
                           f"refunded ({item.amount_fen} paid for it, {int(taken)} refunded or being refunded).")
    return session.get(PaymentDue, request.due_id).reference_id


@dataclass(frozen=True)
class RefundToSubmit:
    refund_number: str
    order_number: str
    transaction_id: str
    amount_fen: int


def refund_to_submit(session: Session, refund_number: str) -> RefundToSubmit | None:
    refund = session.get(Refund, refund_number)
    if refund is None or refund.status != "pending":
        return None
    order = find_order(session, refund.order_number)
    return RefundToSubmit(refund.refund_number, order.order_number, order.provider_transaction_id, refund.amount_fen)


def pending_refund_numbers(session: Session, limit: int = 100) -> list[str]:
    """Refunds to submit (again): those the provider has not accepted yet. One it accepted and is still making
    (WeChat Pay's PROCESSING) is asked about instead (refunds_to_check)."""
    return list(session.scalars(select(Refund.refund_number).where(Refund.status == "pending",
                                                                   Refund.provider_refund_id.is_(None))
                                .order_by(Refund.requested_at).limit(limit)))


def refunds_to_check(session: Session, now: datetime, limit: int = 100) -> list[str]:
    """Refunds the provider is still making whose next check is due."""
    return list(session.scalars(select(Refund.refund_number).where(
        Refund.status == "pending", Refund.next_check_at.is_not(None), Refund.next_check_at <= now)
        .order_by(Refund.next_check_at).limit(limit)))


def note_refund_checked(session: Session, rules: PaymentRules, refund_number: str, now: datetime,
                        note: str) -> None:
    """The provider was asked and the refund has not ended (or the provider could not say): ask again later, after
    twice the last wait, up to the bound."""
    refund = session.get(Refund, refund_number, with_for_update=True)
    # one held (ABNORMAL) or stopped (amount mismatch) while this check was on its way stays so
    if refund is None or refund.status != "pending" or refund.next_check_at is None or refund.abnormal_at is not None:
        return
    refund.checks += 1
    refund.next_check_at = now + rules.refund_check_delay(refund.checks)
    refund.last_error = note[:200]


def note_refund_attempt_failed(session: Session, refund_number: str, error: str) -> None:
    session.execute(update(Refund).where(Refund.refund_number == refund_number, Refund.status == "pending")
                    .values(attempts=Refund.attempts + 1, last_error=error[:200]))


def note_refund_processing(session: Session, refund_number: str, provider_refund_id: str,
                           first_check_at: datetime | None = None) -> None:
    """The provider accepted the refund and is making it (WeChat Pay's PROCESSING): it stays pending until the
    refund notification, or asking the provider about it (from ``first_check_at`` on), says how it ended."""
    values = {"provider_refund_id": provider_refund_id, "last_error": "PROCESSING at the provider"}
    if first_check_at is not None:
        values["next_check_at"] = func.coalesce(Refund.next_check_at, first_check_at)
    # a refund already held as ABNORMAL (its notification came first) is not asked about again
    session.execute(update(Refund).where(Refund.refund_number == refund_number, Refund.status == "pending",
                                         Refund.abnormal_at.is_(None))
                    .values(**values).execution_options(synchronize_session=False))


def hold_abnormal_refund(session: Session, refund_number: str, provider_refund_id: str | None, error: str,
                         actor: str, context: IncidentContext) -> bool:
    """The provider made the refund but it could not reach the payer (WeChat Pay's ABNORMAL: their card was
    cancelled or frozen; the money waits at WeChat Pay). It is not failed: releasing its amount would let a second
    refund pay the same money twice. It stays pending with its amount reserved, is neither resubmitted (it has the
    provider's refund id) nor asked about again, and is flagged once (``refund_abnormal``) for finance to settle at
    the merchant platform (or by WeChat Pay's 发起异常退款). If that later reaches the payer, WeChat Pay's SUCCESS
    for it completes the refund as usual. False when it was already held (a copy, or the other path's answer)."""
    held = session.execute(
        update(Refund).where(Refund.refund_number == refund_number, Refund.status == "pending",
                             Refund.abnormal_at.is_(None))
        .values(abnormal_at=utcnow(), next_check_at=None, last_error=error[:200],
                provider_refund_id=func.coalesce(Refund.provider_refund_id, provider_refund_id))
        .execution_options(synchronize_session=False))
    if held.rowcount != 1:
        return False
    refund = session.get(Refund, refund_number)
    session.refresh(refund)
    context.order_number = refund.order_number
    context.detail = {"refund_number": refund_number, "amount_fen": refund.amount_fen}
    record_incident(session, "refund_abnormal", f"Refund {refund_number} was made but could not reach the payer "
                    f"({error}); settle it at the WeChat Pay merchant platform, never by a second refund.", actor,
                    context, flagged=True)
    return True


def stop_checking_mismatched_refund(session: Session, refund_number: str, provider_amount_fen: int,
                                    actor: str) -> bool:
    """The provider reports the refund with another amount than we asked for: it is never completed on it, and a
    person must look. It is no longer asked about (the answer would not change by itself, and every replica asks),
    and the flagged ``amount_mismatch`` is recorded once, by whichever check stopped it. Its refund notification
    can still end it. False when it was already stopped."""
    stopped = session.execute(
        update(Refund).where(Refund.refund_number == refund_number, Refund.status == "pending",
                             Refund.next_check_at.is_not(None))
        .values(next_check_at=None, last_error="amount differs at the provider: a person must look")
        .execution_options(synchronize_session=False))
    if stopped.rowcount != 1:
        return False
    refund = session.get(Refund, refund_number)
    session.refresh(refund)
    context = IncidentContext(order_number=refund.order_number, detail={
        "refund_number": refund_number, "refund_amount_fen": refund.amount_fen,
        "provider_amount_fen": provider_amount_fen})
    record_incident(session, "amount_mismatch", f"The provider reports refund {refund_number} as "
                    f"{provider_amount_fen} fen; it is for {refund.amount_fen} fen.", actor, context)
    return True


def complete_refund(session: Session, provider_name: str, refund_number: str, provider_refund_id: str) -> bool:
    """The provider refunded. Applied once: a second worker finishing the same refund changes nothing."""
    now = utcnow()
    done = session.execute(update(Refund).where(Refund.refund_number == refund_number, Refund.status == "pending")
                           .values(status="succeeded", completed_at=now, provider_refund_id=provider_refund_id,
                                   attempts=Refund.attempts + 1)
                           .execution_options(synchronize_session=False))
    if done.rowcount != 1:
        return False
    refund = session.get(Refund, refund_number)
    session.refresh(refund)
    order = find_order(session, refund.order_number, lock=True)
    order.refunded_fen += refund.amount_fen
    order.refund_reserved_fen -= refund.amount_fen
    order.status = domain.order_status_after_refund(order.amount_fen, order.refunded_fen)
    outbox.add(session, PaymentRefundedV1(
        refund_number=refund.refund_number, order_number=order.order_number, reference_id=refund.reference_id,
        payer_kind=order.payer_kind, payer_id=order.payer_id, amount_fen=refund.amount_fen,
        order_refunded_fen=order.refunded_fen, fully_refunded=order.status == domain.REFUNDED,
        reason=refund.reason, provider=provider_name, refunded_at=now,
        fully_refunded_dues=_fully_refunded_dues(session, order)), subject=refund.refund_number)
    return True


def _fully_refunded_dues(session: Session, order: PaymentOrder) -> list[RefundedDue]:
    """The order's dues whose whole amount has gone back: every due of a fully refunded order, else those whose
    own refunds (naming the due) add up to what was paid for it. Certificates revokes a certificate whose fee is
    among them (services/certificates/usecases/revocations.py)."""
    whole = order.status == domain.REFUNDED
    refunded = dict(session.execute(
        select(Refund.due_id, func.sum(Refund.amount_fen)).where(
            Refund.order_number == order.order_number, Refund.status == "succeeded", Refund.due_id.is_not(None))
        .group_by(Refund.due_id)).all())
    items = session.execute(select(PaymentOrderItem.due_id, PaymentOrderItem.amount_fen, PaymentDue.purpose,
                                   PaymentDue.reference_id)
                            .join(PaymentDue, PaymentDue.due_id == PaymentOrderItem.due_id)
                            .where(PaymentOrderItem.order_number == order.order_number)
                            .order_by(PaymentOrderItem.due_id)).all()
    return [RefundedDue(purpose=purpose, reference_id=reference_id) for due_id, amount_fen, purpose, reference_id
            in items if whole or int(refunded.get(due_id) or 0) >= amount_fen]


def fail_refund(session: Session, refund_number: str, error: str, context: IncidentContext) -> bool:
    """The provider refused for good (not a timeout): stop retrying, release the reservation, flag it."""
    failed = session.execute(update(Refund).where(Refund.refund_number == refund_number, Refund.status == "pending")
                             .values(status="failed", attempts=Refund.attempts + 1, last_error=error[:200])
                             .execution_options(synchronize_session=False))
    if failed.rowcount != 1:
        return False
    refund = session.get(Refund, refund_number)
    session.refresh(refund)
    order = find_order(session, refund.order_number, lock=True)
    order.refund_reserved_fen -= refund.amount_fen
    context.order_number = order.order_number
    context.detail = {"refund_number": refund_number}
    record_incident(session, "refund_refused", f"The provider refused refund {refund_number}: {error}",
                    "timer:submit_pending_refunds", context)
    return True


def refund_not_submitted(session: Session, refund_number: str, error: ProviderError) -> None:
    """The provider could not take the refund: asked again by the timer if asking again may help (the same refund
    number), else failed for good and flagged."""
    if error.retryable:
        note_refund_attempt_failed(session, refund_number, f"{error.code}: {error}")
    else:
        fail_refund(session, refund_number, f"{error.code}: {error}", IncidentContext())


def settle_refund_answer(session: Session, provider_name: str, rules: PaymentRules, refund_number: str,
                         answer: ProviderRefund, now: datetime) -> None:
    """What the provider answered when the refund was submitted: done, being made (asked about from
    ``REFUND_CHECK_FIRST_SECONDS`` on, until its notification or an answer ends it), made but not reaching the
    payer (held for a person, not failed) or refused."""
    if answer.status == "SUCCESS":
        complete_refund(session, provider_name, refund_number, answer.provider_refund_id)
    elif answer.status == "PROCESSING":  # the refund notification, or asking about it, ends it
        note_refund_processing(session, refund_number, answer.provider_refund_id, now + rules.refund_check_delay(0))
    elif answer.status == "ABNORMAL":  # made, but not reaching the payer: held for a person, not failed
        hold_abnormal_refund(session, refund_number, answer.provider_refund_id,
                             "ABNORMAL: the provider's refund answer", "timer:submit_pending_refunds",
                             IncidentContext())
    else:
        fail_refund(session, refund_number, f"{answer.status}: the provider's refund answer", IncidentContext())


def settle_refund_status(session: Session, provider_name: str, rules: PaymentRules, refund_number: str,
                         found: ProviderRefund | None, now: datetime) -> None:
    """What the provider said when asked how a refund it is making stands (``found``: None when it does not know
    it yet). Whichever of this answer and the refund notification comes first ends the refund; the other then
    changes nothing (a refund no longer pending is left alone, and complete_refund / fail_refund act on a pending
    refund only, in one conditional update)."""
    refund = session.get(Refund, refund_number)
    if refund is None or refund.status != "pending":
        return
    if found is None or found.status == "PROCESSING":
        note_refund_checked(session, rules, refund_number, now,
                            "PROCESSING at the provider" if found else "the provider does not know this refund yet")
    elif found.amount_fen is not None and found.amount_fen != refund.amount_fen:
        # never completed on an amount we did not ask for: no longer asked about, flagged once
        stop_checking_mismatched_refund(session, refund_number, found.amount_fen, "timer:check_processing_refunds")
    elif found.status == "SUCCESS":
        complete_refund(session, provider_name, refund_number, found.provider_refund_id)
    elif found.status == "ABNORMAL":  # made, but not reaching the payer: held for a person, not failed
        hold_abnormal_refund(session, refund_number, found.provider_refund_id, "ABNORMAL: the provider's refund query",
                             "timer:check_processing_refunds", IncidentContext())
    else:  # CLOSED: it will not be made (its amount may be refunded again)
        fail_refund(session, refund_number, f"{found.status}: the provider's refund query", IncidentContext())


def refunds(session: Session, overdue_only: bool, order_number: str | None = None) -> RefundList:
    today = business_day(utcnow())
    query = select(Refund).order_by(Refund.requested_at)
    if order_number:
        query = query.where(Refund.order_number == order_number)
    if overdue_only:
        query = query.where(Refund.status != "succeeded", Refund.promised_by < today)
    return RefundList(refunds=[refund_view(refund, today) for refund in session.scalars(query)])


def find_refund(session: Session, refund_number: str) -> RefundView:
    refund = session.get(Refund, refund_number)
    if refund is None:
        raise NotFound("refund_not_found", f"No refund {refund_number}.")
    return refund_view(refund)


# --- reconciliation -----------------------------------------------------------------------------------

def reconcile(session: Session, provider: PaymentProvider, day: date) -> ReconciliationReport:
    """Our ledger for a Beijing business day against the provider's statement for it."""
    start = datetime(day.year, day.month, day.day, tzinfo=PROVIDER_ZONE).astimezone(UTC)
    end = start + timedelta(days=1)
    lines = provider.statement(day)
    theirs_paid = {line.reference: (line.order_number, line.amount_fen) for line in lines if line.entry == "payment"}
    theirs_refunded = {line.reference: (line.order_number, line.amount_fen) for line in lines
                       if line.entry == "refund"}
    paid_when = func.coalesce(ProviderPayment.paid_at_provider, ProviderPayment.credited_at)
    ours_paid = {p.provider_transaction_id: (p.order_number, p.amount_fen) for p in session.scalars(
        select(ProviderPayment).where(ProviderPayment.provider == provider.name, paid_when >= start,
                                      paid_when < end))}
    ours_refunded = {r.refund_number: (r.order_number, r.amount_fen) for r in session.scalars(
        select(Refund).where(Refund.status == "succeeded", Refund.completed_at >= start, Refund.completed_at < end))}
    mismatches = (domain.reconcile("payment", ours_paid, theirs_paid)
                  + domain.reconcile("refund", ours_refunded, theirs_refunded))
    return ReconciliationReport(
        day=day, provider=provider.name,
        payments_matched=len(ours_paid.keys() & theirs_paid.keys()) - sum(
            1 for m in mismatches if m.entry == "payment" and m.kind == "amount_differs"),
        refunds_matched=len(ours_refunded.keys() & theirs_refunded.keys()) - sum(
            1 for m in mismatches if m.entry == "refund" and m.kind == "amount_differs"),
        credence_total_fen=sum(a for _, a in ours_paid.values()) - sum(a for _, a in ours_refunded.values()),
        provider_total_fen=sum(a for _, a in theirs_paid.values()) - sum(a for _, a in theirs_refunded.values()),
        mismatches=[MismatchView(**m.__dict__) for m in mismatches])
