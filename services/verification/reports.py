"""Verification reports (like CHSI's online verification report): a signed statement of a certificate's facts,
with a random report code, a 30-day expiry and a QR code that opens the online page.

Plain Python with ``cryptography`` only, so that anyone can verify a downloaded report offline:

    python -m services.verification.reports verify report.json --public-key credence-reports.pem [--qr TEXT]

The signature covers the canonical JSON of ``document`` (keys sorted, no spaces, UTF-8). Offline
verification proves the document is the authority's and not expired; the online page (``verify_url``) is the
authoritative answer and shows whether the certificate was revoked or superseded since.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from credence_common import signing

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


def canonical(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign_report(private_key, document: dict) -> dict:
    return {"document": document, "algorithm": ALGORITHM, "key_id": signing.key_id(private_key.public_key()),
            "signature": signing.sign(private_key, canonical(document))}


@dataclass(frozen=True)
class Verdict:
    verdict: str  # valid | invalid_signature | expired | qr_mismatch | malformed
    message: str


def verify_report(signed: dict, public_key, now: datetime, qr_payload: str | None = None) -> Verdict:
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
    parser = argparse.ArgumentParser(prog="python -m services.verification.reports",
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
