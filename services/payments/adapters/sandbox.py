"""The sandbox provider: our adapter to the sandbox bank (``adapters/sandbox_bank.py``), a ``PaymentProvider``
(``domain/providers.py``) that behaves like Alipay / WeChat Pay.

The sandbox is two parts, kept apart as they would be in real life:
- ``SandboxBank`` is the provider's side: its own tables and transactions, its own private key. Only
  development and staging have it; it is what a payer "pays" in a demo or a test.
- ``SandboxProvider`` is our adapter to it: it knows the bank's public key, never the private one, and
  verifies each notification before anything in it is believed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from credence_common.contracts.errors import BadRequest, Unauthorized
from credence_common.contracts.payments import SandboxNotification
from credence_common.contracts.validation import parse
from services.payments import domain
from services.payments.adapters.sandbox_bank import (
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    SandboxBank,
)
from services.payments.domain.providers import Notification, header


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
