from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from credence_common.persistence.messaging import messaging_models
from credence_common.persistence.types import UTCDateTime
from services.payments.adapters.protection import Sealed


class Base(DeclarativeBase):
    pass


OutboxEvent, ProcessedEvent = messaging_models(Base)


class Fee(Base):
    """The fee schedule: what each purpose costs. Staff add exam fees here without a code change."""

    __tablename__ = "fees"

    fee_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    description: Mapped[str] = mapped_column(String(120), nullable=False)
    amount_fen: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    updated_by: Mapped[str] = mapped_column(String(64), nullable=False)


class PaymentDue(Base):
    """One amount somebody owes for one thing (a certificate fee for one certificate), and who must pay it."""

    __tablename__ = "payment_dues"
    __table_args__ = (UniqueConstraint("purpose", "reference_id", name="uq_due_purpose_reference"),
                      Index("ix_payment_dues_payer", "payer_kind", "payer_id", "status"))

    due_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32), nullable=False)
    reference_id: Mapped[str] = mapped_column(String(64), nullable=False)
    candidate_id: Mapped[str] = mapped_column(String(36), nullable=False)
    payer_kind: Mapped[str] = mapped_column(String(12), nullable=False)
    payer_id: Mapped[str] = mapped_column(String(64), nullable=False)
    amount_fen: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(12), nullable=False)
    # The one open order holding this due: a second order for it is refused, so a double click pays once.
    open_order_number: Mapped[str | None] = mapped_column(String(40), nullable=True)
    paid_order_number: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class PaymentOrder(Base):
    __tablename__ = "payment_orders"
    __table_args__ = (UniqueConstraint("payer_kind", "payer_id", "idempotency_key", name="uq_order_idempotency"),
                      Index("ix_payment_orders_payer", "payer_kind", "payer_id"),
                      Index("ix_payment_orders_status_expiry", "status", "expires_at"))

    order_number: Mapped[str] = mapped_column(String(40), primary_key=True)
    payer_kind: Mapped[str] = mapped_column(String(12), nullable=False)
    payer_id: Mapped[str] = mapped_column(String(64), nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(64), nullable=False)
    amount_fen: Mapped[int] = mapped_column(Integer, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    pay_url: Mapped[str] = mapped_column(String(300), nullable=False)  # native: the code_url; jsapi: empty
    pay_method: Mapped[str] = mapped_column(String(8), nullable=False, default="native", server_default="native")
    # jsapi: WeChat Pay's prepay_id, from which the wx.requestPayment parameters are signed (the payer's openid,
    # which opened it, is not kept)
    prepay_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    provider_transaction_id: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    refunded_fen: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Refunds asked for and not yet confirmed: reserved by a conditional update, so concurrent requests can
    # never together ask for more than was paid.
    refund_reserved_fen: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # encrypted at rest (services/payments/adapters/protection.py): a personal invoice's title is the payer's name
    invoice_title: Mapped[str | None] = mapped_column("invoice_title_encrypted", Sealed(), nullable=True)
    invoice_tax_number: Mapped[str | None] = mapped_column("invoice_tax_number_encrypted", Sealed(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PaymentOrderItem(Base):
    __tablename__ = "payment_order_items"

    order_number: Mapped[str] = mapped_column(ForeignKey("payment_orders.order_number"), primary_key=True)
    due_id: Mapped[str] = mapped_column(ForeignKey("payment_dues.due_id"), primary_key=True)
    amount_fen: Mapped[int] = mapped_column(Integer, nullable=False)


class ProviderPayment(Base):
    """Money credited, once per provider transaction: the unique key is what makes crediting idempotent."""

    __tablename__ = "provider_payments"
    __table_args__ = (UniqueConstraint("provider", "provider_transaction_id", name="uq_provider_transaction"),)

    payment_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    provider_transaction_id: Mapped[str] = mapped_column(String(64), nullable=False)
    order_number: Mapped[str] = mapped_column(String(40), nullable=False, index=True)
    amount_fen: Mapped[int] = mapped_column(Integer, nullable=False)
    credited_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    paid_at_provider: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # for reconciliation
    source: Mapped[str] = mapped_column(String(12), nullable=False)  # notification | query


class NotificationNonce(Base):
    """Nonces of verified notifications: the same signed notification presented twice is a replay (answered as
    done when what it says is already applied: usecases.handle_notification)."""

    __tablename__ = "notification_nonces"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    # the SHA-256 of the body this nonce came with: an exact copy is a redelivery of what was applied (answered
    # as done), the same nonce on another body is not (refused); empty for nonces kept before revision 0007
    body_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (UniqueConstraint("requested_by", "request_key", name="uq_refund_request"),
                      Index("ix_refunds_status", "status", "promised_by"),
                      Index("ix_refunds_next_check_at", "status", "next_check_at"))

    refund_number: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_number: Mapped[str] = mapped_column(ForeignKey("payment_orders.order_number"), nullable=False,
                                              index=True)
    amount_fen: Mapped[int] = mapped_column(Integer, nullable=False)
    reason: Mapped[str] = mapped_column(String(200), nullable=False)
    reference_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # the one due of the order this refund gives back (one student's fee of an institution's order), if any
    due_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    requested_by: Mapped[str] = mapped_column(String(64), nullable=False)
    request_key: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(12), nullable=False)  # pending | succeeded | failed
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    promised_by: Mapped[date] = mapped_column(Date(), nullable=False)
    provider_refund_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # accepted by the provider and still being made (WeChat Pay's PROCESSING): when to ask it next how the refund
    # stands, and how often it was asked (the wait doubles each time, up to a bound)
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    checks: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    # when the provider reported the refund ABNORMAL (WeChat Pay: made, but the payer's card was cancelled or
    # frozen, so the money waits at WeChat Pay): it stays pending with its amount reserved, is neither resubmitted
    # nor asked about, and a person settles it at the merchant platform; never refunded a second time
    abnormal_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PaymentIncident(Base):
    """Everything refused or suspicious: forged or replayed notifications, wrong amounts, payments for closed
    orders, refunds beyond the payment, payers reaching for others' dues. ``flagged`` means money may
    have moved at the provider and a person must look (usually: refund it)."""

    __tablename__ = "payment_incidents"

    incident_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    code: Mapped[str] = mapped_column(String(40), nullable=False)
    message: Mapped[str] = mapped_column(String(300), nullable=False)
    actor: Mapped[str] = mapped_column(String(80), nullable=False)
    order_number: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    provider_transaction_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    body_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    flagged: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
