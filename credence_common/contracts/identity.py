"""RPC and HTTP schemas of the identity service."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Strict = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RegisterCandidate(BaseModel):
    model_config = Strict

    full_name: str = Field(min_length=2, max_length=40, description="Real name as on the resident ID card")
    resident_id_number: str = Field(min_length=18, max_length=18, description="18-character resident ID number")
    mobile: str = Field(min_length=11, max_length=11, description="Mainland mobile number, 11 digits")
    password: str = Field(min_length=8, max_length=128, description="At least 8 characters")
    exam_region: str | None = Field(
        default=None, pattern=r"^[0-9]{2}$", description="Two-digit exam region; defaults to the ID's province"
    )


class CandidateView(BaseModel):
    candidate_id: str
    full_name: str
    resident_id_number_masked: str
    mobile_masked: str
    exam_region: str
    status: Literal["pre_registered", "confirmed"]
    ticket_number: str | None = None
    confirmation_method: Literal["online", "on_site"] | None = None
    registered_at: datetime
    confirmed_at: datetime | None = None


class ConfirmIdentity(BaseModel):
    model_config = Strict

    method: Literal["online", "on_site"] = "online"


class CandidateCredentials(BaseModel):
    model_config = Strict

    resident_id_number: str = Field(min_length=1, max_length=18)
    password: str = Field(min_length=1, max_length=128)


class StaffCredentials(BaseModel):
    model_config = Strict

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=128)


class AuthenticatedPrincipal(BaseModel):
    subject: str
    role: Literal["candidate", "institution", "staff"]
    display_name: str
