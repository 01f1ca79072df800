from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from credence_common.messaging import messaging_models
from credence_common.types import UTCDateTime


class Base(DeclarativeBase):
    pass


OutboxEvent, ProcessedEvent = messaging_models(Base)


class VerifiableCertificate(Base):
    """The read model behind public checks, built only from ``certificate.issued`` events, so public
    verification keeps answering while the certificates service is down."""

    __tablename__ = "verifiable_certificates"

    certificate_number: Mapped[str] = mapped_column(String(15), primary_key=True)
    certificate_id: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    holder_name: Mapped[str] = mapped_column(String(40), nullable=False)
    # NFKC can expand one character into many (ﷺ -> 18 letters): no fixed width fits every name.
    holder_name_key: Mapped[str] = mapped_column(Text, nullable=False)
    resident_id_number_masked: Mapped[str] = mapped_column(String(18), nullable=False)
    program_code: Mapped[str] = mapped_column(String(32), nullable=False)
    program_name: Mapped[str] = mapped_column(String(120), nullable=False)
    issued_on: Mapped[date] = mapped_column(Date, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
