from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from credence_common.messaging import messaging_models
from credence_common.sequences import sequence_model
from credence_common.types import UTCDateTime


class Base(DeclarativeBase):
    pass


OutboxEvent, ProcessedEvent = messaging_models(Base)
NumberSequence = sequence_model(Base)


class Certificate(Base):
    __tablename__ = "certificates"

    certificate_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    result_id: Mapped[str] = mapped_column(String(36), unique=True, nullable=False)
    candidate_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    ticket_number: Mapped[str] = mapped_column(String(12), nullable=False)
    holder_name: Mapped[str] = mapped_column(String(40), nullable=False)
    resident_id_number_masked: Mapped[str] = mapped_column(String(18), nullable=False)
    program_code: Mapped[str] = mapped_column(String(32), nullable=False)
    program_name: Mapped[str] = mapped_column(String(120), nullable=False)
    sitting: Mapped[str] = mapped_column(String(7), nullable=False)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    payer_kind: Mapped[str] = mapped_column(String(12), nullable=False)
    payer_id: Mapped[str] = mapped_column(String(64), nullable=False)
    certificate_fee_fen: Mapped[int] = mapped_column(Integer, nullable=False)
    certificate_number: Mapped[str | None] = mapped_column(String(15), unique=True, nullable=True)
    payment_order_number: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
