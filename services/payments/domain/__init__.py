"""Payment rules in plain Python. Money is integer fen everywhere; a float never touches an amount."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from credence_common import calendar
from credence_common.contracts.errors import Forbidden
from credence_common.security import signing
from credence_common.security.actors import Actor

CURRENCY = "CNY"

# The fee schedule is data (table ``fees``, seeded by migrations/versions/0002_fees_dues_orders_refunds.py and
# changed by staff with ``set_fee``); every other service shows payments' amounts (its ``fee_schedule`` RPC).

# Order states. created -> paid -> partially_refunded -> refunded; created -> closed (by the payer or staff)
# or expired (nobody paid in time).
CREATED, PAID, PARTIALLY_REFUNDED, REFUNDED, CLOSED, EXPIRED = (
    "created", "paid", "partially_refunded", "refunded", "closed", "expired")
PAID_STATES = (PAID, PARTIALLY_REFUNDED, REFUNDED)
ENDED_UNPAID = (CLOSED, EXPIRED)

# Due (an amount somebody owes for one thing) states.
DUE_OPEN, DUE_PAID, DUE_CANCELLED = "open", "paid", "cancelled"


@dataclass(frozen=True)
class Payer:
    """Who pays: a candidate for themself, or a training institution for its students (代缴)."""

    kind: str  # candidate | institution
    payer_id: str  # the candidate's id, or the institution's id (identity's institution_id)


def payer_of(actor: Actor) -> Payer:
    """The payer a signed actor acts as. An institution account pays as its institution, which identity named at
    sign-in (the ``institution_id`` the gateway signed into the actor); its own subject is the account
    (``institution:<username>``), never a payer. Dues name the institution: certificates learns it from identity's
    ``candidate_confirmed.v1``."""
    if actor.role == "candidate":
        return Payer("candidate", actor.subject)
    if actor.role == "institution":
        if not actor.institution_id:
            raise Forbidden("institution_not_named", "This institution sign-in does not name its institution "
                            "(it was made before sign-ins did); sign in again.")
        return Payer("institution", actor.institution_id)
    raise Forbidden("forbidden", f"A {actor.role} pays nothing.")


def new_order_number(now: datetime) -> str:
    """``P`` + date + 10 random digits: unguessable, sortable by day, short enough to read out."""
    return f"P{now:%Y%m%d}{secrets.randbelow(10**10):010d}"


def invoice_number(order_number: str) -> str:
    """An order's one invoice: ``F`` (发票) and the order number's date and digits, so it is unique as the order is
    and finance finds the order from the invoice."""
    return f"F{order_number[1:]}"


def new_refund_number(now: datetime) -> str:
    """Generated once per refund and sent on every retry, so the provider refunds once."""
    return f"R{now:%Y%m%d}{secrets.randbelow(10**10):010d}"


def is_whole_fen(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_amount(order_amount_fen: int, paid_amount_fen: int) -> bool:
    return is_whole_fen(paid_amount_fen) and paid_amount_fen == order_amount_fen


def order_status_after_refund(paid_fen: int, refunded_fen: int) -> str:
    return REFUNDED if refunded_fen >= paid_fen else PARTIALLY_REFUNDED


def refundable_fen(paid_fen: int, refunded_or_pending_fen: int) -> int:
    """What may still be refunded: never more than was paid, counting refunds still in flight."""
    return max(paid_fen - refunded_or_pending_fen, 0)


# --- signed provider notifications ------------------------------------------------------------------
# Modelled on WeChat Pay API v3: the provider signs "timestamp\nnonce\nbody\n" with its private key and
# sends timestamp, nonce, signature and key serial in headers. Alipay signs a parameter string instead;
# either way the signature covers the exact bytes we received, so we verify before parsing anything.

def signing_message(timestamp: str, nonce: str, raw_body: bytes) -> bytes:
    return timestamp.encode("ascii") + b"\n" + nonce.encode("ascii") + b"\n" + raw_body + b"\n"


# The key handling is shared with verification's signed reports (credence_common/security/signing.py).
load_private_key = signing.load_private_key
load_public_key = signing.load_public_key
public_key_pem = signing.public_key_pem
sign = signing.sign
signature_is_valid = signing.signature_is_valid


def timestamp_is_fresh(timestamp: str | None, now: datetime, tolerance_seconds: int) -> bool:
    """Unix seconds within ``tolerance_seconds`` of now either way: an old captured notification is stale."""
    if not timestamp or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    return abs(int(timestamp) - now.timestamp()) <= tolerance_seconds


# --- refund promise: working days and the holiday list are credence_common/calendar.py's ---------------

# A refund is promised within this many working days of its request (REFUND_PROMISE_WORKING_DAYS overrides).
REFUND_PROMISE_WORKING_DAYS = 3
add_working_days = calendar.add_working_days
parse_holidays = calendar.parse_holidays


# --- reconciliation -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mismatch:
    kind: str  # missing_at_provider | missing_in_credence | amount_differs
    entry: str  # payment | refund
    reference: str  # provider transaction id or refund number
    order_number: str
    credence_amount_fen: int | None
    provider_amount_fen: int | None


def reconcile(entry: str, ours: dict[str, tuple[str, int]], theirs: dict[str, tuple[str, int]]) -> list[Mismatch]:
    """Compare two ledgers keyed by the provider's reference: ``{reference: (order_number, amount_fen)}``."""
    mismatches = []
    for reference in sorted(ours.keys() | theirs.keys()):
        our = ours.get(reference)
        their = theirs.get(reference)
        if our is not None and their is None:
            mismatches.append(Mismatch("missing_at_provider", entry, reference, our[0], our[1], None))
        elif their is not None and our is None:
            mismatches.append(Mismatch("missing_in_credence", entry, reference, their[0], None, their[1]))
        elif our is not None and their is not None and our[1] != their[1]:
            mismatches.append(Mismatch("amount_differs", entry, reference, our[0], our[1], their[1]))
    return mismatches
