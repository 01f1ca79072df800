"""Payment providers behind one interface, and a sandbox provider that behaves like Alipay / WeChat Pay.

Every provider does the same five things for us: prepare a payment and give the payer a pay URL, send
an asynchronous notification signed with its private key when the payer has paid, answer a query about
an order, refund (once per refund number, however often we ask), and hand out a daily statement.

The sandbox is two parts, kept apart as they would be in real life:
- ``SandboxBank`` is the provider's side: its own tables and transactions, its own private key. Only
  development and staging have it; it is what a payer "pays" in a demo or a test.
- ``SandboxProvider`` is our adapter to it: it knows the bank's public key, never the private one, and
  verifies each notification before anything in it is believed.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal, Protocol

from sqlalchemy import Integer, String, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from credence_common import calendar
from credence_common.contracts.payments import SandboxNotification
from credence_common.db import make_engine
from credence_common.errors import BadRequest, Unauthorized
from credence_common.types import UTCDateTime
from credence_common.validation import parse
from services.payments import domain

# Providers settle and issue statements by Beijing date: the authority's zone (credence_common/calendar.py).
PROVIDER_ZONE = calendar.AUTHORITY_ZONE
HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE, HEADER_SERIAL = (
    "Sandbox-Timestamp", "Sandbox-Nonce", "Sandbox-Signature", "Sandbox-Serial")


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
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


class SandboxProvider:
    """Our adapter to the sandbox bank. Holds only the bank's public key."""

    name = "sandbox"

    def __init__(self, bank: SandboxBank, public_key, merchant_id: str, pay_url_base: str,
                 tolerance_seconds: int = 300):
        self.bank = bank
        self.public_key = public_key
        self.merchant_id = merchant_id
        self.pay_url_base = pay_url_base.rstrip("/")
        self.tolerance_seconds = tolerance_seconds

    def prepare(self, order_number, amount_fen, description, expires_at) -> str:
        self.bank.prepay(self.merchant_id, order_number, amount_fen, description, expires_at)
        return f"{self.pay_url_base}/{order_number}/payment"

    def verify_notification(self, raw_body: bytes, headers: Mapping[str, str], now: datetime) -> Notification:
        timestamp, nonce = header(headers, HEADER_TIMESTAMP), header(headers, HEADER_NONCE)
        signature = header(headers, HEADER_SIGNATURE)
        if (not timestamp or not nonce or not signature or len(nonce) > 64 or not nonce.isascii()
                or not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12):
            raise Unauthorized("invalid_signature", "The notification's signature headers are missing.")
        if not domain.signature_is_valid(self.public_key, domain.signing_message(timestamp, nonce, raw_body),
                                         signature):
            raise Unauthorized("invalid_signature", "The notification's signature does not verify with the "
                               "provider's public key.")
        if not domain.timestamp_is_fresh(timestamp, now, self.tolerance_seconds):
            raise Unauthorized("stale_notification", f"The notification was signed more than "
                               f"{self.tolerance_seconds} s from now; it may be a replay.")
        try:
            document = json.loads(raw_body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise BadRequest("malformed_json", "The notification body is not valid JSON.") from None
        body = parse(SandboxNotification, document)
        total, currency = body.amount.get("total"), body.amount.get("currency")
        if not domain.is_whole_fen(total) or not isinstance(currency, str):
            raise BadRequest("malformed_amount", "The notification's amount must be a whole number of fen with "
                             "a currency.")
        return Notification(self.name, nonce, body.mchid, body.out_trade_no, body.transaction_id,
                            body.trade_state, total, currency, body.success_time)

    def query(self, order_number):
        return self.bank.query(self.merchant_id, order_number)

    def close(self, order_number):
        return self.bank.close(self.merchant_id, order_number)

    def refund(self, refund_number, order_number, transaction_id, amount_fen):
        return self.bank.refund(self.merchant_id, refund_number, transaction_id, amount_fen)

    def statement(self, day):
        return self.bank.statement(self.merchant_id, day)


# --- the provider's own side ---------------------------------------------------------------------------

class BankBase(DeclarativeBase):
    pass


class SandboxTrade(BankBase):
    __tablename__ = "sandbox_provider_trades"

    merchant_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    order_number: Mapped[str] = mapped_column(String(40), primary_key=True)
    description: Mapped[str] = mapped_column(String(120), nullable=False)
    amount_fen: Mapped[int] = mapped_column(Integer, nullable=False)
    paid_fen: Mapped[int | None] = mapped_column(Integer, nullable=True)
    trade_state: Mapped[str] = mapped_column(String(12), nullable=False)
    transaction_id: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SandboxRefund(BankBase):
    __tablename__ = "sandbox_provider_refunds"

    merchant_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    refund_number: Mapped[str] = mapped_column(String(40), primary_key=True)
    transaction_id: Mapped[str] = mapped_column(String(64), nullable=False)
    order_number: Mapped[str] = mapped_column(String(40), nullable=False)
    amount_fen: Mapped[int] = mapped_column(Integer, nullable=False)
    provider_refund_id: Mapped[str] = mapped_column(String(64), nullable=False)
    refunded_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


def sandbox_db_uri(configured: str | None, service_db_uri: str) -> str:
    """Where the sandbox bank keeps its ledger. Beside our tables on PostgreSQL; in a file of its own beside
    ours on SQLite, where one writer at a time would make the bank wait for the very transaction that is
    waiting for the bank."""
    if configured:
        return configured
    if service_db_uri.startswith("sqlite"):
        if not service_db_uri.startswith("sqlite:///") or service_db_uri in ("sqlite:///", "sqlite:///:memory:"):
            raise ValueError("the sandbox provider needs a SQLite file of its own: set PAYMENT_SANDBOX_DB_URI")
        stem, dot, suffix = service_db_uri.rpartition(".")
        if dot and "/" not in suffix:
            return f"{stem}-sandbox-provider.{suffix}"
        return service_db_uri + "-sandbox-provider"
    return service_db_uri


def business_day(moment: datetime) -> date:
    return calendar.business_day(moment)


class SandboxBank:
    """A payment provider in a box: pays, notifies with signed messages, refunds once per refund number,
    answers queries and prints statements. Its ledger is its own (tables prefixed ``sandbox_provider_``,
    its own transactions), so our bugs cannot hide behind a shared transaction."""

    def __init__(self, db_uri: str, private_key, key_serial: str = "sandbox-1"):
        self.engine = make_engine(db_uri)
        BankBase.metadata.create_all(self.engine)
        self.private_key = private_key
        self.key_serial = key_serial

    def close_engine(self):
        self.engine.dispose()

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def prepay(self, merchant_id, order_number, amount_fen, description, expires_at):
        with self._session() as session, session.begin():
            if session.get(SandboxTrade, (merchant_id, order_number)) is None:
                session.add(SandboxTrade(merchant_id=merchant_id, order_number=order_number,
                                         description=description[:120], amount_fen=amount_fen,
                                         trade_state="NOTPAY", expires_at=expires_at))

    def pay(self, merchant_id: str, order_number: str, amount_fen: int | None = None,
            even_if_closed: bool = False, now: datetime | None = None) -> SandboxTrade:
        """The payer pays. ``amount_fen`` and ``even_if_closed`` make the sandbox misbehave on purpose, so
        tests can see what we do with a wrong amount or a payment that races an order's closing."""
        now = now or datetime.now(UTC)
        with self._session() as session, session.begin():
            trade = session.get(SandboxTrade, (merchant_id, order_number), with_for_update=True)
            if trade is None:
                raise ProviderError("ORDER_NOT_EXIST", "The provider has no such order.", retryable=False)
            if trade.trade_state in ("SUCCESS", "REFUND"):
                return trade  # paying twice is the provider's "already paid", not a second charge
            if trade.trade_state == "CLOSED" and not even_if_closed:
                raise ProviderError("ORDER_CLOSED", "The order is closed at the provider.", retryable=False)
            trade.trade_state = "SUCCESS"
            trade.paid_fen = trade.amount_fen if amount_fen is None else amount_fen
            trade.transaction_id = f"SBX{now:%Y%m%d}{uuid.uuid4().hex[:20].upper()}"
            trade.paid_at = now
            return trade

    def notification(self, trade: SandboxTrade, now: datetime | None = None) -> tuple[bytes, dict[str, str]]:
        """The signed notification for a paid trade. Each delivery is signed afresh (a new nonce), as
        providers do when they retry, so a retry is a duplicate and a byte-for-byte copy is a replay."""
        now = now or datetime.now(UTC)
        body = json.dumps({
            "id": str(uuid.uuid4()), "event_type": "TRANSACTION.SUCCESS", "mchid": trade.merchant_id,
            "out_trade_no": trade.order_number, "transaction_id": trade.transaction_id,
            "trade_state": "SUCCESS", "amount": {"total": trade.paid_fen, "currency": domain.CURRENCY},
            "success_time": trade.paid_at.isoformat() if trade.paid_at else None,
        }, separators=(",", ":")).encode()
        timestamp, nonce = str(int(now.timestamp())), secrets.token_hex(16)
        signature = domain.sign(self.private_key, domain.signing_message(timestamp, nonce, body))
        return body, {HEADER_TIMESTAMP: timestamp, HEADER_NONCE: nonce, HEADER_SIGNATURE: signature,
                      HEADER_SERIAL: self.key_serial, "Content-Type": "application/json"}

    def query(self, merchant_id, order_number) -> ProviderTrade | None:
        with self._session() as session:
            trade = session.get(SandboxTrade, (merchant_id, order_number))
            if trade is None:
                return None
            return self._trade(trade)

    @staticmethod
    def _trade(trade: SandboxTrade) -> ProviderTrade:
        amount = trade.paid_fen if trade.paid_fen is not None else trade.amount_fen
        return ProviderTrade(trade.order_number, trade.trade_state, trade.transaction_id, amount, domain.CURRENCY,
                             trade.paid_at)

    def close(self, merchant_id, order_number) -> ProviderTrade | None:
        with self._session() as session, session.begin():
            trade = session.get(SandboxTrade, (merchant_id, order_number), with_for_update=True)
            if trade is None:
                return None
            if trade.trade_state == "NOTPAY":
                trade.trade_state = "CLOSED"
            return self._trade(trade)

    def refund(self, merchant_id, refund_number, transaction_id, amount_fen) -> ProviderRefund:
        """Refunds once per refund number: asking again returns the first answer."""
        try:
            with self._session() as session, session.begin():
                existing = session.get(SandboxRefund, (merchant_id, refund_number))
                if existing is not None:
                    return ProviderRefund(refund_number, existing.provider_refund_id, "SUCCESS")
                trade = session.scalars(select(SandboxTrade).where(
                    SandboxTrade.merchant_id == merchant_id, SandboxTrade.transaction_id == transaction_id)
                    .with_for_update()).first()
                if trade is None or trade.trade_state not in ("SUCCESS", "REFUND"):
                    raise ProviderError("TRADE_NOT_PAID", "The provider has no paid trade to refund.",
                                        retryable=False)
                refunded = session.scalar(select(func.coalesce(func.sum(SandboxRefund.amount_fen), 0)).where(
                    SandboxRefund.merchant_id == merchant_id, SandboxRefund.transaction_id == transaction_id))
                if refunded + amount_fen > (trade.paid_fen or 0):
                    raise ProviderError("REFUND_EXCEEDS_PAYMENT", "The provider refuses to refund more than "
                                        "was paid.", retryable=False)
                provider_refund_id = f"SBXR{uuid.uuid4().hex[:20].upper()}"
                session.add(SandboxRefund(merchant_id=merchant_id, refund_number=refund_number,
                                          transaction_id=transaction_id, order_number=trade.order_number,
                                          amount_fen=amount_fen, provider_refund_id=provider_refund_id,
                                          refunded_at=datetime.now(UTC)))
                trade.trade_state = "REFUND"
                return ProviderRefund(refund_number, provider_refund_id, "SUCCESS")
        except IntegrityError:
            return self.refund(merchant_id, refund_number, transaction_id, amount_fen)  # a concurrent retry won

    def statement(self, merchant_id, day: date) -> list[StatementLine]:
        start = datetime(day.year, day.month, day.day, tzinfo=PROVIDER_ZONE)
        end = start + timedelta(days=1)
        with self._session() as session:
            trades = session.scalars(select(SandboxTrade).where(
                SandboxTrade.merchant_id == merchant_id, SandboxTrade.paid_at >= start, SandboxTrade.paid_at < end))
            lines = [StatementLine("payment", t.transaction_id, t.order_number, t.paid_fen) for t in trades]
            refunds = session.scalars(select(SandboxRefund).where(
                SandboxRefund.merchant_id == merchant_id, SandboxRefund.refunded_at >= start,
                SandboxRefund.refunded_at < end))
            lines += [StatementLine("refund", r.refund_number, r.order_number, r.amount_fen) for r in refunds]
        return lines
