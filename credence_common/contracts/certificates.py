"""RPC and HTTP schemas of the certificates service."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

CertificateStatus = Literal["awaiting_candidate_payment", "awaiting_institution_payment", "issued"]


class CertificateView(BaseModel):
    certificate_id: str
    certificate_number: str | None
    status: CertificateStatus
    holder_name: str
    resident_id_number_masked: str
    ticket_number: str
    program_code: str
    program_name: str
    sitting: str
    certificate_fee_fen: int
    payer_kind: Literal["candidate", "institution"]
    created_at: datetime
    issued_at: datetime | None = None


class CertificateList(BaseModel):
    certificates: list[CertificateView]
