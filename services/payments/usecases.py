"""Payments service layer."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from credence_common.contracts.events import CertificateAwaitingPaymentV1, PaymentSucceededV1
from credence_common.contracts.payments import (
    CallbackAcknowledgement,
    PaymentOrderList,
    PaymentOrderView,
    SandboxCallback,
)
from credence_common.errors import BadRequest, Conflict, InvalidInput, NotFound, Unauthorized
from credence_common.events import utcnow
from credence_common.messaging import Outbox
from credence_common.validation import parse
from services.payments import domain
from services.payments.models import OutboxEvent, PaymentOrder

outbox = Outbox(OutboxEvent)
SANDBOX_PROVIDER = "sandbox"


def order_view(order: PaymentOrder) -> PaymentOrderView:
    return PaymentOrderView.model_validate(order, from_attributes=True)


def create_certificate_fee_order(session: Session, event: CertificateAwaitingPaymentV1) -> None:
    exists = session.execute(
        select(PaymentOrder.order_number).where(PaymentOrder.purpose == "certificate_fee",
                                                PaymentOrder.reference_id == event.certificate_id)
    ).first()
    if exists:
        return
    now = utcnow()
    session.add(PaymentOrder(order_number=domain.new_order_number(now), purpose="certificate_fee",
                             reference_id=event.certificate_id, payer_kind=event.payer_kind,
                             payer_id=event.payer_id, amount_fen=event.certificate_fee_fen, status="pending",
                             created_at=now))


def orders_for_payer(session: Session, payer_kind: str, payer_id: str) -> PaymentOrderList:
    rows = session.scalars(
        select(PaymentOrder).where(PaymentOrder.payer_kind == payer_kind, PaymentOrder.payer_id == payer_id)
        .order_by(PaymentOrder.created_at)
    ).all()
    return PaymentOrderList(orders=[order_view(o) for o in rows])


def handle_sandbox_callback(session: Session, secret: str, raw_body: bytes,
                            signature: str | None) -> CallbackAcknowledgement:
    """A provider's word that an order was paid. Trusted only when signed; applied at most once."""
    if not domain.signature_is_valid(secret, raw_body, signature):
        raise Unauthorized("invalid_signature", "The callback signature is missing or does not match.")
    try:
        document = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("malformed_json", "The callback body is not valid JSON.") from None
    callback = parse(SandboxCallback, document)
    order = session.get(PaymentOrder, callback.order_number, with_for_update=True)
    if order is None:
        raise NotFound("order_not_found", f"No payment order {callback.order_number}.")
    if order.status == "paid":
        if order.provider_transaction_id == callback.provider_transaction_id:
            return CallbackAcknowledgement(order_number=order.order_number, status="paid", duplicate=True)
        raise Conflict("order_already_paid",
                       "This order was already paid by another transaction; refund the second one.")
    if callback.status != "SUCCESS":
        return CallbackAcknowledgement(order_number=order.order_number, status=order.status)
    if not domain.check_amount(order.amount_fen, callback.amount_fen):
        raise InvalidInput("amount_mismatch",
                           f"The callback pays {callback.amount_fen} fen but the order is for "
                           f"{order.amount_fen} fen; the order stays unpaid.")
    taken = session.execute(select(PaymentOrder.order_number).where(
        PaymentOrder.provider_transaction_id == callback.provider_transaction_id)).first()
    if taken:
        raise Conflict("transaction_already_used", "This provider transaction already paid another order.")
    now = utcnow()
    order.status = "paid"
    order.provider = SANDBOX_PROVIDER
    order.provider_transaction_id = callback.provider_transaction_id
    order.paid_at = now
    outbox.add(session, PaymentSucceededV1(
        order_number=order.order_number, purpose=order.purpose, reference_id=order.reference_id,
        payer_kind=order.payer_kind, payer_id=order.payer_id, amount_fen=order.amount_fen,
        provider=SANDBOX_PROVIDER, provider_transaction_id=callback.provider_transaction_id, paid_at=now),
        subject=order.order_number)
    return CallbackAcknowledgement(order_number=order.order_number, status="paid")
