from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from credence_common.messaging import messaging_models
from credence_common.types import UTCDateTime


class Base(DeclarativeBase):
    pass


OutboxEvent, ProcessedEvent = messaging_models(Base)


class PaymentOrder(Base):
    __tablename__ = "payment_orders"
    __table_args__ = (UniqueConstraint("purpose", "reference_id", name="uq_order_purpose_reference"),)

    order_number: Mapped[str] = mapped_column(String(40), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32), nullable=False)
    reference_id: Mapped[str] = mapped_column(String(64), nullable=False)
    payer_kind: Mapped[str] = mapped_column(String(12), nullable=False)
    payer_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    amount_fen: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(12), nullable=False)
    provider: Mapped[str | None] = mapped_column(String(32), nullable=True)
    provider_transaction_id: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
