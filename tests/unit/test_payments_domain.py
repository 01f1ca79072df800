from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime

import pytest

from services.payments.domain import check_amount, new_order_number, sign_callback, signature_is_valid

SECRET = "unit-test-callback-secret"
BODY = b'{"order_number":"P202601150000000001","amount_fen":6000,"status":"paid"}'


def test_sign_callback_is_hmac_sha256_hex_with_scheme_prefix():
    signature = sign_callback(SECRET, BODY)
    expected = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert signature == "sha256=" + expected
    assert re.fullmatch(r"sha256=[0-9a-f]{64}", signature)


def test_sign_callback_is_deterministic_and_body_sensitive():
    assert sign_callback(SECRET, BODY) == sign_callback(SECRET, BODY)
    assert sign_callback(SECRET, BODY) != sign_callback(SECRET, BODY + b" ")
    assert sign_callback(SECRET, BODY) != sign_callback(SECRET + "x", BODY)


def test_valid_signature_is_accepted():
    assert signature_is_valid(SECRET, BODY, sign_callback(SECRET, BODY)) is True


@pytest.mark.parametrize("padding", [" ", "\t", "\n", "  \r\n"])
def test_signature_with_surrounding_whitespace_is_accepted(padding):
    assert signature_is_valid(SECRET, BODY, padding + sign_callback(SECRET, BODY) + padding) is True


@pytest.mark.parametrize(
    "tampered",
    [
        BODY.replace(b"6000", b"6"),
        BODY.replace(b"paid", b"PAID"),
        BODY + b"\n",
        b"",
    ],
)
def test_tampered_body_is_refused(tampered):
    assert signature_is_valid(SECRET, tampered, sign_callback(SECRET, BODY)) is False


def test_wrong_secret_is_refused():
    assert signature_is_valid(SECRET, BODY, sign_callback("another-secret", BODY)) is False
    assert signature_is_valid("another-secret", BODY, sign_callback(SECRET, BODY)) is False


@pytest.mark.parametrize("signature", [None, "", "sha256=", "   "])
def test_missing_signature_is_refused(signature):
    assert signature_is_valid(SECRET, BODY, signature) is False


def test_signature_without_scheme_or_with_other_scheme_is_refused():
    digest = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert signature_is_valid(SECRET, BODY, digest) is False
    assert signature_is_valid(SECRET, BODY, "sha1=" + digest) is False


def test_empty_secret_never_validates():
    # Even a signature made with the empty secret must not pass: an unset secret is not a secret.
    assert signature_is_valid("", BODY, sign_callback("", BODY)) is False


def test_order_number_format():
    now = datetime(2026, 1, 15, 23, 59, 59, tzinfo=UTC)
    number = new_order_number(now)
    assert re.fullmatch(r"P20260115\d{10}", number)
    assert len(number) == 1 + 8 + 10


def test_order_number_zero_pads_the_date():
    assert new_order_number(datetime(2027, 3, 4)).startswith("P20270304")


def test_order_numbers_are_unique_over_many_calls():
    now = datetime(2026, 1, 15, tzinfo=UTC)
    numbers = [new_order_number(now) for _ in range(2000)]
    assert len(set(numbers)) == len(numbers)
    assert all(re.fullmatch(r"P20260115\d{10}", n) for n in numbers)
    # the random part really varies (not a counter stuck on one value)
    assert len({n[9] for n in numbers}) > 1


@pytest.mark.parametrize(
    "order, paid, ok",
    [
        (6000, 6000, True),
        (6000, 5999, False),
        (6000, 6001, False),
        (0, 0, True),
        (1, True, False),  # bool is an int subclass, but never an amount
        (0, False, False),
        (6000, 6000.0, False),  # floats are refused even when equal
        (6000, "6000", False),
        (6000, None, False),
    ],
)
def test_check_amount(order, paid, ok):
    assert check_amount(order, paid) is ok


def test_a_non_ascii_signature_is_simply_invalid():
    assert signature_is_valid("s", b"{}", "sha256=é") is False
