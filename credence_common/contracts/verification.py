"""RPC and HTTP schemas of the verification service."""

from __future__ import annotations

from datetime import date
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
