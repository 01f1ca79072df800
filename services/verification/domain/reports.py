"""Verification reports (like CHSI's online verification report): a signed statement of a certificate's facts,
with a random report code, a 30-day expiry and a QR code that opens the online page.

Plain Python with ``cryptography`` only, so that anyone can verify a downloaded report offline:

    python -m services.verification.domain.reports verify report.json --public-key credence-reports.pem [--qr TEXT]

The signature covers the canonical JSON of ``document`` (keys sorted, no spaces, UTF-8). Offline
verification proves the document is the authority's and not expired; the online page (``verify_url``) is the
authoritative answer and shows whether the certificate was revoked or superseded since.

The same signed report travels in a compact form that fits one QR code (``compact_payload``, printed as the
PDF's second QR code and kept in its metadata), like the EU digital COVID certificate's ``HC1:``::

    CRV1:<base45( zlib( key id (8 bytes) | Ed25519 signature (64 bytes) | canonical JSON of the document ) )>

Base45 (RFC 9285) uses only QR's alphanumeric characters, so the code stays small. The signed bytes travel
as they were signed: a verifier checks them before it parses them. ``verify_signed`` and ``verify_payload``
judge either form against the authority's published keys (several at once: the current one and previous ones
until they retire) and say valid, tampered, expired, unknown_key or malformed, as the standalone verifier
(verifier/, ``credence-verify``) does; tests/golden/verification_reports holds vectors both must agree on.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import secrets
import sys
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from credence_common.security import signing

LIFETIME = timedelta(days=30)
ALGORITHM = "Ed25519"
# What a report's QR code adds to its page's URL, so that the holder's log tells a scanned QR code from a typed
# code (issue #19). Not signed: the document's ``verify_url`` stays as printed, and an offline check takes it
# with or without the marker.
QR_MARKER = "?via=qr"


def qr_url(verify_url: str) -> str:
    return verify_url + QR_MARKER


def new_report_code() -> str:
    """160 random bits in base32 (32 characters, no padding): unguessable, and easy to read out or type."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii")


def canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign_report(private_key: signing.PrivateKey, document: dict[str, Any]) -> dict[str, Any]:
    return {"document": document, "algorithm": ALGORITHM, "key_id": signing.key_id(private_key.public_key()),
            "signature": signing.sign(private_key, canonical(document))}


@dataclass(frozen=True)
class Verdict:
    # verify_report: valid | invalid_signature | expired | qr_mismatch | malformed
    # verify_signed, verify_payload: valid | tampered | expired | unknown_key | malformed
    verdict: str
    message: str
    document: dict[str, Any] | None = None  # what was signed, once the signature is known to be good
    key_id: str | None = None


def verify_report(signed: dict[str, Any], public_key: signing.PublicKey, now: datetime,
                  qr_payload: str | None = None) -> Verdict:
    """What a downloaded report proves on its own. ``qr_payload``: the text read from its QR code."""
    try:
        document = signed["document"]
        expires_at = datetime.fromisoformat(document["expires_at"])
        verify_url = document["verify_url"]
        signature = signed["signature"]
    except (KeyError, TypeError, ValueError):
        return Verdict("malformed", "This is not a Credence verification report.")
    if signed.get("algorithm") != ALGORITHM or not signing.signature_is_valid(public_key, canonical(document),
                                                                            signature):
        return Verdict("invalid_signature", "The signature does not match: the report was changed or is not "
                                            "the authority's.")
    if qr_payload is not None and qr_payload not in (verify_url, qr_url(verify_url)):
        return Verdict("qr_mismatch", "The QR code does not lead to this report's page: do not trust it.")
    if now >= expires_at:
        return Verdict("expired", f"The report expired at {expires_at.isoformat()}; ask the holder for a new one.")
    subject = "the exam record is unchanged" if document.get("kind") == "education_record" else \
        "the certificate is still valid"
    return Verdict("valid", f"Signed by the authority and valid until {expires_at.isoformat()}. The online page "
                            f"{verify_url} shows whether {subject} today.")


# --- the compact payload (CRV1) and verification against the published keys ------------------------------

PAYLOAD_PREFIX = "CRV1:"
MAX_PAYLOAD_CHARS = 8000  # a QR code holds at most 4296 alphanumeric characters
MAX_DOCUMENT_BYTES = 64 * 1024  # a document inflating past this is not a report (and not a zip bomb either)
BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_BASE45_VALUES = {char: value for value, char in enumerate(BASE45)}
KEY_ID_BYTES, SIGNATURE_BYTES = 8, 64


def base45_encode(data: bytes) -> str:
    """RFC 9285: each two bytes as three characters (least significant first), a last odd byte as two."""
    out = []
    for start in range(0, len(data), 2):
        pair = data[start:start + 2]
        value = pair[0] * 256 + pair[1] if len(pair) == 2 else pair[0]
        digits = 3 if len(pair) == 2 else 2
        for _ in range(digits):
            value, digit = divmod(value, 45)
            out.append(BASE45[digit])
    return "".join(out)


def base45_decode(text: str) -> bytes:
    try:
        values = [_BASE45_VALUES[char] for char in text]
    except KeyError:
        raise ValueError("not base45: a character outside its alphabet") from None
    if len(values) % 3 == 1:
        raise ValueError("not base45: its length leaves one character over")
    out = bytearray()
    for start in range(0, len(values), 3):
        chunk = values[start:start + 3]
        value = sum(digit * 45 ** power for power, digit in enumerate(chunk))
        if len(chunk) == 3:
            if value > 0xFFFF:
                raise ValueError("not base45: a group is larger than two bytes")
            out += value.to_bytes(2, "big")
        else:
            if value > 0xFF:
                raise ValueError("not base45: the last group is larger than a byte")
            out.append(value)
    return bytes(out)


def compact_payload(signed: dict[str, Any]) -> str:
    """The signed report as one QR code's text. The signature is the report's own: it covers the same
    canonical JSON, so the JSON, the PDF and the QR code carry one signature."""
    if signed.get("algorithm") != ALGORITHM:
        raise ValueError("only Ed25519 reports have a CRV1 payload")
    header = bytes.fromhex(signed["key_id"]) + base64.b64decode(signed["signature"], validate=True)
    if len(header) != KEY_ID_BYTES + SIGNATURE_BYTES:
        raise ValueError("a CRV1 payload needs an 8-byte key id and a 64-byte signature")
    return PAYLOAD_PREFIX + base45_encode(zlib.compress(header + canonical(signed["document"]), 9))


def decode_payload(text: str) -> tuple[str, bytes, bytes]:
    """(key id, signature, the signed bytes) of a CRV1 payload; ValueError when it is not one."""
    if not isinstance(text, str) or not text.strip().upper().startswith(PAYLOAD_PREFIX):
        raise ValueError(f"a Credence report payload starts with {PAYLOAD_PREFIX}")
    text = text.strip()
    if len(text) > MAX_PAYLOAD_CHARS:
        raise ValueError("the payload is longer than any report's")
    try:
        packed = base45_decode(text[len(PAYLOAD_PREFIX):])
        inflater = zlib.decompressobj()
        raw = inflater.decompress(packed, MAX_DOCUMENT_BYTES + KEY_ID_BYTES + SIGNATURE_BYTES)
    except zlib.error:
        raise ValueError("the payload does not inflate") from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise ValueError("the payload is cut short or inflates past any report's size")
    if len(raw) <= KEY_ID_BYTES + SIGNATURE_BYTES:
        raise ValueError("the payload is too short to hold a key id, a signature and a document")
    return (raw[:KEY_ID_BYTES].hex(), raw[KEY_ID_BYTES:KEY_ID_BYTES + SIGNATURE_BYTES],
            raw[KEY_ID_BYTES + SIGNATURE_BYTES:])


def signed_from_payload(text: str) -> dict[str, Any]:
    """The signed report (as ``sign_report`` returns it) that a CRV1 payload carries; not verified."""
    key, signature, message = decode_payload(text)
    try:
        document = json.loads(message.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError("the payload's document is not JSON") from None
    return {"document": document, "algorithm": ALGORITHM, "key_id": key,
            "signature": base64.b64encode(signature).decode("ascii")}


@dataclass(frozen=True)
class TrustedKey:
    """One of the authority's published report keys: the current one signs, previous ones still verify until
    ``retire_after`` (the reports they signed have expired by then)."""

    key_id: str
    public_key: signing.PublicKey
    status: str = "current"  # current | previous
    not_before: datetime | None = None
    retire_after: datetime | None = None


def _document_facts(document: Any) -> datetime:
    if not isinstance(document, dict) or not isinstance(document.get("verify_url"), str):
        raise ValueError("no verify_url")
    expires_at = datetime.fromisoformat(document["expires_at"])
    if expires_at.tzinfo is None:
        raise ValueError("an expiry without a time zone")
    return expires_at


def _judge(key_id: str, signature: bytes, message: bytes, document: Any, keys: Mapping[str, TrustedKey],
           now: datetime) -> Verdict:
    try:
        expires_at = _document_facts(document)
    except (KeyError, TypeError, ValueError):
        return Verdict("malformed", "This is not a Credence verification report.")
    key = keys.get(key_id)
    if key is None:
        return Verdict("unknown_key", f"Signed with key {key_id}, which is not one of the authority's published "
                                      "report keys: it is not the authority's, or your copy of the keys is old.",
                       key_id=key_id)
    if key.retire_after is not None and now > key.retire_after:
        return Verdict("unknown_key", f"Signed with key {key_id}, which the authority retired on "
                                      f"{key.retire_after.isoformat()}: it verifies nothing after that.",
                       key_id=key_id)
    if not signing.signature_is_valid(key.public_key, message, base64.b64encode(signature).decode("ascii")):
        return Verdict("tampered", "The signature does not match: the report was changed after it was signed.",
                       key_id=key_id)
    if now >= expires_at:
        return Verdict("expired", f"The report expired at {expires_at.isoformat()}; ask the holder for a new one.",
                       document, key_id)
    subject = "the exam record is unchanged" if document.get("kind") == "education_record" else \
        "the certificate is still valid"
    return Verdict("valid", f"Signed by the authority (key {key_id}) and valid until {expires_at.isoformat()}. The "
                            f"online page {document['verify_url']} shows whether {subject} today.", document, key_id)


def verify_signed(signed: dict[str, Any], keys: Mapping[str, TrustedKey], now: datetime) -> Verdict:
    """A report in its JSON form, judged against the published keys (``keys`` by key id)."""
    try:
        document = signed["document"]
        key = signed["key_id"]
        signature = base64.b64decode(signed["signature"], validate=True)
        if signed.get("algorithm") != ALGORITHM or not isinstance(key, str) or not isinstance(document, dict):
            raise ValueError("not an Ed25519 report")
        message = canonical(document)
    except (KeyError, TypeError, ValueError, binascii.Error):
        return Verdict("malformed", "This is not a Credence verification report.")
    return _judge(key, signature, message, document, keys, now)


def verify_payload(text: str, keys: Mapping[str, TrustedKey], now: datetime) -> Verdict:
    """A report in its compact form (the PDF's second QR code), judged against the published keys."""
    try:
        key, signature, message = decode_payload(text)
    except ValueError as why:
        return Verdict("malformed", f"This is not a Credence report payload: {why}.")
    try:
        document = json.loads(message.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        document = None  # judged below: a bad signature says tampered, a good one over no JSON malformed
    key_entry = keys.get(key)
    if document is None and key_entry is not None and not signing.signature_is_valid(
            key_entry.public_key, message, base64.b64encode(signature).decode("ascii")):
        return Verdict("tampered", "The signature does not match: the report was changed after it was signed.",
                       key_id=key)
    return _judge(key, signature, message, document, keys, now)


STATE_MESSAGES = {
    "valid": "The certificate is valid.",
    "expired": "This report has expired; ask the holder for a new one.",
    "closed": "The holder closed this report.",
    "revoked": "The certificate was revoked by the authority after this report was made.",
    "superseded": "The certificate was replaced by a newer one (reissue or correction) after this report was made.",
    "corrected": "A result in this exam record was corrected after a re-check since this report was made; ask the "
                 "holder for a new report.",
}
RECORD_VALID_MESSAGE = "The exam record is as stated in this report."


def report_state(now: datetime, expires_at: datetime, closed_at: datetime | None, subject_status: str) -> str:
    """What the online page says today: closed or expired reports say so first; then what became of the
    subject since (a certificate revoked or superseded, an exam record corrected)."""
    if closed_at is not None:
        return "closed"
    if now >= expires_at:
        return "expired"
    if subject_status in ("revoked", "superseded", "corrected"):
        return subject_status
    return "valid"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.verification.domain.reports",
                                     description="Verify a downloaded Credence verification report offline.")
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="check the signature, the expiry and (optionally) the QR code")
    verify.add_argument("report", help="the report's JSON file")
    verify.add_argument("--public-key", required=True, help="the authority's public key (PEM)")
    verify.add_argument("--qr", help="the text read from the report's QR code")
    args = parser.parse_args(argv)
    with open(args.report, encoding="utf-8") as file:
        signed = json.load(file)
    with open(args.public_key, encoding="utf-8") as file:
        public_key = signing.load_public_key(file.read())
    outcome = verify_report(signed, public_key, datetime.now(UTC), args.qr)
    print(f"{outcome.verdict}: {outcome.message}")
    return 0 if outcome.verdict == "valid" else 1


if __name__ == "__main__":
    sys.exit(main())
