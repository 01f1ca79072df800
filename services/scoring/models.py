from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from credence_common.messaging import messaging_models
from credence_common.types import UTCDateTime


class Base(DeclarativeBase):
    pass


OutboxEvent, ProcessedEvent = messaging_models(Base)


class Program(Base):
    __tablename__ = "programs"

    program_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    program_name: Mapped[str] = mapped_column(String(120), nullable=False)
    pass_mark: Mapped[int] = mapped_column(Integer, nullable=False)


class RosterEntry(Base):
    """Candidates known to scoring, built from identity's confirmation events."""

    __tablename__ = "roster"

    ticket_number: Mapped[str] = mapped_column(String(12), primary_key=True)
    candidate_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    full_name: Mapped[str] = mapped_column(String(40), nullable=False)
    resident_id_number_masked: Mapped[str] = mapped_column(String(18), nullable=False)
    merged_into: Mapped[str | None] = mapped_column(String(12), nullable=True)


class ExamResult(Base):
    __tablename__ = "exam_results"
    __table_args__ = (UniqueConstraint("ticket_number", "program_code", "sitting", name="uq_result_sitting"),)

    result_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    ticket_number: Mapped[str] = mapped_column(String(12), nullable=False, index=True)
    candidate_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    program_code: Mapped[str] = mapped_column(String(32), nullable=False)
    sitting: Mapped[str] = mapped_column(String(7), nullable=False)
    final_score: Mapped[int] = mapped_column(Integer, nullable=False)
    outcome: Mapped[str | None] = mapped_column(String(10), nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
