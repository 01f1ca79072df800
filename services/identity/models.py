from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from credence_common.messaging import messaging_models
from credence_common.sequences import sequence_model
from credence_common.types import UTCDateTime


class Base(DeclarativeBase):
    pass


OutboxEvent, ProcessedEvent = messaging_models(Base)
NumberSequence = sequence_model(Base)


class Candidate(Base):
    __tablename__ = "candidates"

    candidate_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    full_name: Mapped[str] = mapped_column(String(40), nullable=False)
    resident_id_number: Mapped[str] = mapped_column(String(18), unique=True, nullable=False)
    mobile: Mapped[str] = mapped_column(String(11), nullable=False)
    exam_region: Mapped[str] = mapped_column(String(2), nullable=False)
    password_hash: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    ticket_number: Mapped[str | None] = mapped_column(String(12), unique=True, nullable=True)
    confirmation_method: Mapped[str | None] = mapped_column(String(10), nullable=True)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class StaffAccount(Base):
    __tablename__ = "staff_accounts"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(80), nullable=False)
    password_hash: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
