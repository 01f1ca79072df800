"""RPC and HTTP schemas of the verification service."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PublicCheck(BaseModel):
    """A third-party check (非本人查询): holder name and certificate number, both sent in the body."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    holder_name: str = Field(min_length=1, max_length=40)
    certificate_number: str = Field(min_length=1, max_length=40)


class VerifiedCertificate(BaseModel):
    certificate_number: str
    holder_name_masked: str
    resident_id_number_masked: str
    program_code: str
    program_name: str
    issued_on: date


class PublicCheckResult(BaseModel):
    """``superseded``: a reissue or correction replaced it (the holder has a newer certificate);
    ``revoked``: the authority withdrew it. No match at all is ``404 certificate_not_found``."""

    result: Literal["valid", "superseded", "revoked"]
    certificate: VerifiedCertificate


class RequestReport(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    certificate_number: str = Field(min_length=1, max_length=40)


ReportState = Literal["valid", "expired", "closed", "revoked", "superseded"]


class ReportView(BaseModel):
    """One of the holder's reports."""

    report_code: str
    certificate_number: str
    state: ReportState
    requested_at: datetime
    expires_at: datetime
    closed_at: datetime | None = None
    verify_url: str


class ReportList(BaseModel):
    reports: list[ReportView]


class ReportAnswer(BaseModel):
    """The online page's answer for a report code: authoritative, and always today's status."""

    report_code: str
    state: ReportState
    message: str
    certificate: VerifiedCertificate
    requested_at: datetime
    expires_at: datetime
    signed_report: dict = Field(description="The document as signed, its Ed25519 signature and key id: "
                                            "verifiable offline with the public key")


class ReportPublicKey(BaseModel):
    key_id: str
    algorithm: Literal["Ed25519"]
    public_key_pem: str
