"""Certificate rules in plain Python."""

from __future__ import annotations

CERTIFICATE_FEE_FEN = 6000  # 60 yuan, per the certificate fee schedule

AWAITING_PAYMENT = ("awaiting_candidate_payment", "awaiting_institution_payment")


def parse_fee_fen(value) -> int:
    """The configured fee must be a whole, non-negative number of fen: 60.5 is a mistake, not 60."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"CERTIFICATE_FEE_FEN must be a whole number of fen (e.g. 6000), not {value!r}")
    return value


def initial_status(payer_kind: str) -> str:
    return {"candidate": "awaiting_candidate_payment", "institution": "awaiting_institution_payment"}[payer_kind]


def may_issue(status: str) -> bool:
    """Issue only a certificate still awaiting payment. Payments prices the fee from its fee schedule and
    announces a payment only when the due was paid exactly, so its word is the whole fee."""
    return status in AWAITING_PAYMENT


def serial_sequence_name(year: int, exam_region: str) -> str:
    return f"certificate:{year}:{exam_region}"
