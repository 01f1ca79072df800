"""RPC and HTTP schemas of the payments service."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PaymentOrderView(BaseModel):
    order_number: str
    purpose: Literal["certificate_fee"]
    reference_id: str
    payer_kind: Literal["candidate", "institution"]
    amount_fen: int
    status: Literal["pending", "paid"]
    created_at: datetime
    paid_at: datetime | None = None


class PaymentOrderList(BaseModel):
    orders: list[PaymentOrderView]


class SandboxCallback(BaseModel):
    """What the sandbox payment provider posts, signed with HMAC-SHA256 in ``X-Credence-Signature``."""

    model_config = ConfigDict(extra="forbid")

    order_number: str = Field(min_length=1, max_length=40)
    provider_transaction_id: str = Field(min_length=1, max_length=64)
    amount_fen: int = Field(ge=0, strict=True)
    status: Literal["SUCCESS", "FAILED"]


class CallbackAcknowledgement(BaseModel):
    order_number: str
    status: Literal["pending", "paid"]
    duplicate: bool = False
