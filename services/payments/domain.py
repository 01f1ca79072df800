"""Payment rules in plain Python. Money is integer fen everywhere."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

SIGNATURE_SCHEME = "sha256="


def sign_callback(secret: str, raw_body: bytes) -> str:
    return SIGNATURE_SCHEME + hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()


def signature_is_valid(secret: str, raw_body: bytes, signature: str | None) -> bool:
    if not signature or not secret:
        return False
    expected = sign_callback(secret, raw_body).encode("ascii")
    # compare bytes: compare_digest refuses non-ASCII str, and a header may carry anything
    return hmac.compare_digest(expected, signature.strip().encode("utf-8", "replace"))


def new_order_number(now: datetime) -> str:
    """``P`` + date + 10 random digits: unguessable, sortable by day, short enough to read out."""
    return f"P{now:%Y%m%d}{secrets.randbelow(10**10):010d}"


def check_amount(order_amount_fen: int, paid_amount_fen: int) -> bool:
    if not isinstance(paid_amount_fen, int) or isinstance(paid_amount_fen, bool):
        return False
    return paid_amount_fen == order_amount_fen
