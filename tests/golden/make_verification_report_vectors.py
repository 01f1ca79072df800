"""Writes the golden verification-report vectors (tests/golden/verification_reports/). Ed25519 signatures are
deterministic, so running it again writes the same bytes; a test checks that, and checks each verdict.

    .venv/bin/python -m tests.golden.make_verification_report_vectors
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from credence_common import signing
from services.verification import reports

HERE = Path(__file__).resolve().parent / "verification_reports"
AUTHORITY_KEY = signing.load_private_key("golden-vectors: the authority's report key")
OTHER_KEY = signing.load_private_key("golden-vectors: somebody else's key")
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


def render() -> dict[str, str]:
    files = {f"{name}.json": json.dumps(vector, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
             for name, vector in vectors().items()}
    files["authority_public_key.pem"] = signing.public_key_pem(AUTHORITY_KEY)
    return files


if __name__ == "__main__":
    HERE.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (HERE / name).write_text(text, encoding="utf-8")
        print(f"wrote {HERE / name}")
