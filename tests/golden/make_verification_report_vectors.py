"""Writes the golden verification-report vectors (tests/golden/verification_reports/). Ed25519 signatures are
deterministic and the PDFs are rendered with fixed dates and ids, so running it again writes the same bytes; a
test checks that, and checks each verdict.

    .venv/bin/python -m tests.golden.make_verification_report_vectors

Besides the JSON reports judged with one public key (valid, expired, wrong_key, flipped_byte, tampered_qr),
the authority's key set (``keys.json``, as /.well-known/credence-report-keys.json publishes it: a current key
and a previous one that retires on 2026-12-31), ``signed_vectors.json`` (payloads and JSON reports judged with
that key set: valid, a previous key still valid, tampered, expired, unknown key, retired key, malformed), and
two PDFs: ``valid.pdf`` and ``tampered.pdf`` (a fact changed under the original signature). The platform's
verifier (services/verification/domain/reports.py) and the standalone one (verifier/) must both give each verdict.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime
from pathlib import Path

from credence_common.security import signing
from services.verification.adapters import report_pdf
from services.verification.domain import report_keys, reports

HERE = Path(__file__).resolve().parent / "verification_reports"
AUTHORITY_KEY = signing.load_private_key("golden-vectors: the authority's report key")
OTHER_KEY = signing.load_private_key("golden-vectors: somebody else's key")
PREVIOUS_KEY = signing.load_private_key("golden-vectors: the authority's previous report key")
CURRENT_SINCE = "2026-11-20T00:00:00+00:00"
PREVIOUS_SINCE, PREVIOUS_RETIRES = "2026-05-01T00:00:00+00:00", "2026-12-31T00:00:00+00:00"
KEYS_URL = "https://verify.example.org/.well-known/credence-report-keys.json"
DOCUMENT = {
    "report_code": "GOLDENVECTORGOLDENVECTORGOLDENVE", "kind": "certificate", "issuer": "Credence",
    "certificate": {"certificate_number": "202611000000018", "holder_name_masked": "王*明",
                    "resident_id_number_masked": "**************002X",
                    "program_name": "Psychological Counsellor (Foundation)", "level": "三级 Level 3",
                    "issued_on": "2026-11-23"},
    "status_when_requested": "valid", "requested_at": "2026-11-23T02:00:00+00:00",
    "expires_at": "2026-12-23T02:00:00+00:00",
    "verify_url": "https://verify.example.org/r/GOLDENVECTORGOLDENVECTORGOLDENVE",
}
CHECKED_AT = "2026-11-30T00:00:00+00:00"


def vectors() -> dict[str, dict]:
    valid = reports.sign_report(AUTHORITY_KEY, DOCUMENT)
    flipped = copy.deepcopy(valid)
    flipped["document"]["certificate"]["holder_name_masked"] = "王*朋"  # one character changed after signing
    return {
        "valid": {"report": valid, "qr_payload": DOCUMENT["verify_url"], "checked_at": CHECKED_AT,
                  "expected": "valid"},
        "expired": {"report": valid, "qr_payload": DOCUMENT["verify_url"], "checked_at": "2026-12-24T00:00:00+00:00",
                    "expected": "expired"},
        "wrong_key": {"report": reports.sign_report(OTHER_KEY, DOCUMENT), "qr_payload": DOCUMENT["verify_url"],
                      "checked_at": CHECKED_AT, "expected": "invalid_signature"},
        "flipped_byte": {"report": flipped, "qr_payload": DOCUMENT["verify_url"], "checked_at": CHECKED_AT,
                         "expected": "invalid_signature"},
        "tampered_qr": {"report": valid, "qr_payload": "https://verify.example.org.evil.example/r/GOLDENVECTOR",
                        "checked_at": CHECKED_AT, "expected": "qr_mismatch"},
    }


def current_key() -> reports.TrustedKey:
    return report_keys.current_key(AUTHORITY_KEY, datetime.fromisoformat(CURRENT_SINCE))


def previous_key() -> reports.TrustedKey:
    public = PREVIOUS_KEY.public_key()
    return reports.TrustedKey(signing.key_id(public), public, "previous", datetime.fromisoformat(PREVIOUS_SINCE),
                              datetime.fromisoformat(PREVIOUS_RETIRES))


def key_set() -> dict:
    """What /.well-known/credence-report-keys.json says on CHECKED_AT."""
    return report_keys.key_set(current_key(), (previous_key(),), datetime.fromisoformat(CHECKED_AT))


PREVIOUS_DOCUMENT = {**DOCUMENT, "report_code": "PREVIOUSKEYPREVIOUSKEYPREVIOUSKE",
                     "requested_at": "2026-11-10T02:00:00+00:00", "expires_at": "2026-12-10T02:00:00+00:00",
                     "verify_url": "https://verify.example.org/r/PREVIOUSKEYPREVIOUSKEYPREVIOUSKE"}


def _tampered_payload(signed: dict) -> str:
    """The payload of ``signed`` with one fact changed and the original signature kept."""
    document = copy.deepcopy(signed["document"])
    document["certificate"]["certificate_number"] = "202611000000026"
    return reports.compact_payload({**signed, "document": document})


def signed_vectors() -> list[dict]:
    """Payloads (the PDF's second QR code) and JSON reports, each judged with keys.json at ``checked_at``."""
    valid = reports.sign_report(AUTHORITY_KEY, DOCUMENT)
    previous = reports.sign_report(PREVIOUS_KEY, PREVIOUS_DOCUMENT)
    stranger = reports.sign_report(OTHER_KEY, DOCUMENT)
    flipped = copy.deepcopy(valid)
    flipped["document"]["certificate"]["holder_name_masked"] = "王*朋"
    packed = reports.compact_payload(valid)
    return [
        {"name": "payload_valid", "payload": packed, "checked_at": CHECKED_AT, "expected": "valid"},
        {"name": "payload_previous_key_still_valid", "payload": reports.compact_payload(previous),
         "checked_at": CHECKED_AT, "expected": "valid"},
        {"name": "payload_tampered", "payload": _tampered_payload(valid), "checked_at": CHECKED_AT,
         "expected": "tampered"},
        {"name": "payload_expired", "payload": packed, "checked_at": "2026-12-24T00:00:00+00:00",
         "expected": "expired"},
        {"name": "payload_unknown_key", "payload": reports.compact_payload(stranger), "checked_at": CHECKED_AT,
         "expected": "unknown_key"},
        {"name": "payload_retired_key", "payload": reports.compact_payload(previous),
         "checked_at": "2027-01-02T00:00:00+00:00", "expected": "unknown_key"},
        {"name": "payload_wrong_prefix", "payload": "HC1:" + packed[len(reports.PAYLOAD_PREFIX):],
         "checked_at": CHECKED_AT, "expected": "malformed"},
        {"name": "payload_cut_short", "payload": packed[:200], "checked_at": CHECKED_AT, "expected": "malformed"},
        {"name": "payload_not_base45", "payload": reports.PAYLOAD_PREFIX + "hello, world", "checked_at": CHECKED_AT,
         "expected": "malformed"},
        {"name": "json_valid", "signed_report": valid, "checked_at": CHECKED_AT, "expected": "valid"},
        {"name": "json_previous_key_still_valid", "signed_report": previous, "checked_at": CHECKED_AT,
         "expected": "valid"},
        {"name": "json_tampered", "signed_report": flipped, "checked_at": CHECKED_AT, "expected": "tampered"},
        {"name": "json_expired", "signed_report": valid, "checked_at": "2026-12-24T00:00:00+00:00",
         "expected": "expired"},
        {"name": "json_unknown_key", "signed_report": stranger, "checked_at": CHECKED_AT, "expected": "unknown_key"},
        {"name": "json_malformed", "signed_report": {"document": {"kind": "certificate"}, "algorithm": "Ed25519",
                                                     "key_id": valid["key_id"], "signature": valid["signature"]},
         "checked_at": CHECKED_AT, "expected": "malformed"},
    ]


def pdfs() -> dict[str, bytes]:
    valid = reports.sign_report(AUTHORITY_KEY, DOCUMENT)
    changed = copy.deepcopy(valid)
    changed["document"]["certificate"]["certificate_number"] = "202611000000026"  # under the original signature
    return {"valid.pdf": report_pdf.render(valid, KEYS_URL, invariant=True),
            "tampered.pdf": report_pdf.render(changed, KEYS_URL, invariant=True)}


def _json(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def render() -> dict[str, str]:
    files = {f"{name}.json": _json(vector) for name, vector in vectors().items()}
    files["authority_public_key.pem"] = signing.public_key_pem(AUTHORITY_KEY)
    files["keys.json"] = _json(key_set())
    files["signed_vectors.json"] = _json(signed_vectors())
    return files


if __name__ == "__main__":
    HERE.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (HERE / name).write_text(text, encoding="utf-8")
        print(f"wrote {HERE / name}")
    for name, data in pdfs().items():
        (HERE / name).write_bytes(data)
        print(f"wrote {HERE / name}")
