"""The payment provider port: what the use cases ask of a payment provider and what it answers, whichever provider
it is (the sandbox, ``adapters/sandbox.py``; WeChat Pay API v3, ``adapters/wechatpay.py``). Plain Python: the
adapters implement ``PaymentProvider`` and speak these types; the use cases depend on nothing else of theirs.

Every provider does the same five things for us: prepare a payment and give the payer a pay URL, send
an asynchronous notification signed with its private key when the payer has paid, answer a query about
an order, refund (once per refund number, however often we ask), and hand out a daily statement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, Protocol

from credence_common import calendar

# Providers settle and issue statements by Beijing date: the authority's zone (credence_common/calendar.py).
PROVIDER_ZONE = calendar.AUTHORITY_ZONE


@dataclass(frozen=True)
class Notification:
    """A notification whose signature, freshness and shape have been checked."""

    provider: str
    nonce: str
    merchant_id: str
    order_number: str
    transaction_id: str
    trade_state: str
    amount_fen: int
    currency: str
    paid_at: datetime | None = None
    # a refund notification (WeChat Pay's REFUND.*): our refund number, the provider's, and how it ended
    refund_number: str | None = None
    provider_refund_id: str | None = None
    refund_status: str | None = None  # SUCCESS | ABNORMAL | CLOSED


@dataclass(frozen=True)
class ProviderTrade:
    order_number: str
    trade_state: str  # NOTPAY | SUCCESS | CLOSED | REFUND
    transaction_id: str | None
    amount_fen: int
    currency: str
    paid_at: datetime | None = None

    @property
    def paid(self) -> bool:
        return self.trade_state in ("SUCCESS", "REFUND") and bool(self.transaction_id)


@dataclass(frozen=True)
class ProviderRefund:
    refund_number: str
    provider_refund_id: str
    status: str  # SUCCESS, or (WeChat Pay) PROCESSING until its refund notification, or CLOSED | ABNORMAL
    amount_fen: int | None = None  # what the provider says it refunds (WeChat Pay's amount.refund), when it says


@dataclass(frozen=True)
class StatementLine:
    entry: Literal["payment", "refund"]
    reference: str  # transaction id for a payment, our refund number for a refund
    order_number: str
    amount_fen: int


class ProviderError(Exception):
    """The provider refused or could not be reached. ``retryable`` says whether asking again may help."""

    def __init__(self, code: str, message: str, retryable: bool):
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class PaymentProvider(Protocol):
    name: str
    merchant_id: str

    def prepare(self, order_number: str, amount_fen: int, description: str, expires_at: datetime) -> str: ...
    def verify_notification(self, raw_body: bytes, headers: Mapping[str, str], now: datetime) -> Notification: ...
    def query(self, order_number: str) -> ProviderTrade | None: ...
    def close(self, order_number: str) -> ProviderTrade | None:
        """Close an unpaid order; answers the trade as it stands afterwards, so a payment that won the race
        is seen (WeChat Pay answers ORDERPAID)."""
        ...
    def refund(self, refund_number: str, order_number: str, transaction_id: str, amount_fen: int) -> ProviderRefund: ...
    def statement(self, day: date) -> list[StatementLine]: ...


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A notification header's value by its name, whatever its case (HTTP header names are case-insensitive)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None
