"""The sandbox bank: a payment provider in a box, the provider's side of the sandbox (our adapter to it is
``adapters/sandbox.py``). It has its own ledger (tables ``sandbox_provider_*``, its own ORM base and its own
transactions: not our persistence, so not in ``models.py`` nor in our migrations) and its own private key. Only
development and staging have it; it is what a payer "pays" in a demo or a test.
"""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Integer, String, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from credence_common.persistence.db import make_engine
from credence_common.persistence.types import UTCDateTime
from services.payments import domain
from services.payments.domain.providers import (
    PROVIDER_ZONE,
    ProviderError,
    ProviderRefund,
    ProviderTrade,
    StatementLine,
)

HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE, HEADER_SERIAL = (
    "Sandbox-Timestamp", "Sandbox-Nonce", "Sandbox-Signature", "Sandbox-Serial")


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
