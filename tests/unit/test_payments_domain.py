"""Payment rules without a broker or a database: signatures, freshness, amounts, refunds, working days,
reconciliation and invoice tax numbers."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from pydantic import ValidationError

from credence_common.contracts.payments import CreatePaymentOrder, InvoiceDetails
from services.certificates import domain as certificates_domain
from services.payments import domain
from services.payments.adapters.sandbox_bank import sandbox_db_uri
from tests.fee_seed import seeded_fees

BODY = b'{"out_trade_no":"P202611230000000001","amount":{"total":6000,"currency":"CNY"}}'
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
TIMESTAMP = str(int(NOW.timestamp()))


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize("make_key", [ed25519.Ed25519PrivateKey.generate, rsa_key], ids=["ed25519", "rsa"])
def test_a_signature_verifies_with_the_public_key_and_nothing_else(make_key):
    key = make_key()
    message = domain.signing_message(TIMESTAMP, "nonce-1", BODY)
    signature = domain.sign(key, message)
    public = key.public_key()
    assert domain.signature_is_valid(public, message, signature)
    assert not domain.signature_is_valid(public, message + b" ", signature)
    assert not domain.signature_is_valid(public, domain.signing_message(TIMESTAMP, "nonce-2", BODY), signature)
    assert not domain.signature_is_valid(public, domain.signing_message(str(int(TIMESTAMP) + 1), "nonce-1", BODY),
                                         signature)
    assert not domain.signature_is_valid(make_key().public_key(), message, signature)
    assert not domain.signature_is_valid(public, message, None)
    assert not domain.signature_is_valid(public, message, "not base64 !!")
    flipped = bytearray(__import__("base64").b64decode(signature))
    flipped[0] ^= 1
    assert not domain.signature_is_valid(public, message, __import__("base64").b64encode(bytes(flipped)).decode())


def test_keys_load_from_pem_and_a_seed_gives_the_same_sandbox_key_every_time():
    assert domain.public_key_pem(domain.load_private_key("seed")) == domain.public_key_pem(
        domain.load_private_key("seed"))
    assert domain.public_key_pem(domain.load_private_key("seed")) != domain.public_key_pem(
        domain.load_private_key("other"))
    key = rsa_key()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    loaded = domain.load_private_key(pem)
    public = domain.load_public_key(domain.public_key_pem(loaded))
    message = domain.signing_message(TIMESTAMP, "n", BODY)
    assert domain.signature_is_valid(public, message, domain.sign(key, message))
    with pytest.raises(ValueError):
        domain.load_private_key("")


@pytest.mark.parametrize("offset, fresh", [(0, True), (299, True), (-299, True), (301, False), (-301, False)])
def test_a_notification_must_be_signed_within_the_tolerance(offset, fresh):
    assert domain.timestamp_is_fresh(str(int(NOW.timestamp()) + offset), NOW, 300) is fresh


@pytest.mark.parametrize("timestamp", [None, "", "12a", "-5", "1" * 20, "1.5"])
def test_a_malformed_timestamp_is_never_fresh(timestamp):
    assert domain.timestamp_is_fresh(timestamp, NOW, 300) is False


def test_amounts_are_whole_fen_and_exact():
    assert domain.check_amount(6000, 6000)
    assert not domain.check_amount(6000, 5999)
    assert not domain.check_amount(6000, 6000.0)
    assert not domain.check_amount(1, True)


def test_refunds_never_exceed_what_was_paid():
    assert domain.refundable_fen(6000, 0) == 6000
    assert domain.refundable_fen(6000, 2000) == 4000
    assert domain.refundable_fen(6000, 6000) == 0
    assert domain.refundable_fen(6000, 7000) == 0
    assert domain.order_status_after_refund(6000, 2000) == "partially_refunded"
    assert domain.order_status_after_refund(6000, 6000) == "refunded"


def test_order_and_refund_numbers_are_dated_and_random():
    numbers = {domain.new_order_number(NOW) for _ in range(200)}
    assert len(numbers) == 200 and all(re.fullmatch(r"P20261123\d{10}", n) for n in numbers)
    assert re.fullmatch(r"R20261123\d{10}", domain.new_refund_number(NOW))


def test_the_refund_promise_counts_working_days_only():
    friday = date(2026, 11, 20)
    assert domain.add_working_days(friday, 3) == date(2026, 11, 25)  # Mon, Tue, Wed
    monday = date(2026, 11, 23)
    assert domain.add_working_days(monday, 3) == date(2026, 11, 26)
    national_day = domain.parse_holidays("2026-10-01, 2026-10-02,2026-10-05,2026-10-06,2026-10-07")
    assert domain.add_working_days(date(2026, 9, 30), 3, national_day) == date(2026, 10, 12)
    assert domain.parse_holidays("") == ()
    with pytest.raises(ValueError):
        domain.parse_holidays("2026-13-01")


def test_reconciliation_names_every_kind_of_mismatch():
    ours = {"T1": ("P1", 6000), "T2": ("P2", 6000), "T3": ("P3", 6000)}
    theirs = {"T1": ("P1", 6000), "T2": ("P2", 5000), "T4": ("P4", 100)}
    found = {(m.kind, m.reference, m.credence_amount_fen, m.provider_amount_fen)
             for m in domain.reconcile("payment", ours, theirs)}
    assert found == {("amount_differs", "T2", 6000, 5000), ("missing_at_provider", "T3", 6000, None),
                     ("missing_in_credence", "T4", None, 100)}
    assert domain.reconcile("refund", ours, dict(ours)) == []


def test_invoice_tax_numbers_are_checked_unified_social_credit_codes():
    assert InvoiceDetails(title="某培训学校", tax_number="91110000600037341l").tax_number == "91110000600037341L"
    assert InvoiceDetails(title="王小明").tax_number is None
    with pytest.raises(ValidationError):
        InvoiceDetails(title="某培训学校", tax_number="91110000600037341X")
    with pytest.raises(ValidationError):
        InvoiceDetails(title="", tax_number=None)


def test_an_order_names_each_due_once():
    with pytest.raises(ValidationError):
        CreatePaymentOrder(due_ids=["a", "a"])
    with pytest.raises(ValidationError):
        CreatePaymentOrder(due_ids=[])
    assert CreatePaymentOrder(due_ids=["a", "b"]).due_ids == ["a", "b"]


def test_the_sandbox_bank_keeps_its_sqlite_ledger_in_a_file_of_its_own():
    assert sandbox_db_uri(None, "sqlite:///var/payments.sqlite") == "sqlite:///var/payments-sandbox-provider.sqlite"
    assert sandbox_db_uri("", "postgresql://h/payments") == "postgresql://h/payments"
    assert sandbox_db_uri("sqlite:///x.sqlite", "sqlite:///var/payments.sqlite") == "sqlite:///x.sqlite"
    assert sandbox_db_uri(None, "sqlite:///var/payments.db") == "sqlite:///var/payments-sandbox-provider.db"
    assert sandbox_db_uri(None, "sqlite:////srv/data/payments") == "sqlite:////srv/data/payments-sandbox-provider"
    with pytest.raises(ValueError):
        sandbox_db_uri(None, "sqlite:///:memory:")


def test_the_seeded_fee_schedule_is_integer_fen_and_prices_every_fee_certificates_asks_for():
    """The one seed of the schedule is payments' migration (the live schedule is the table it fills)."""
    seeded = seeded_fees()
    assert all(isinstance(fen, int) and not isinstance(fen, bool) and fen >= 0 for fen in seeded.values())
    assert {certificates_domain.CERTIFICATE_FEE_CODE, *certificates_domain.REPLACEMENT_KINDS.values()} <= set(seeded)
