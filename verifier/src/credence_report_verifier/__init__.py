"""Check a Credence verification report offline: ``verify_file`` (a PDF, JSON or image), ``verify_payload`` (the
CRV1 text of its second QR code), ``verify_signed`` (the JSON), against the keys the authority publishes at
``/.well-known/credence-report-keys.json`` (``fetch_keys``, or ``load_keys`` for a saved copy)."""

from __future__ import annotations

from pathlib import Path

from credence_report_verifier.core import (
    COULD_NOT_CHECK,
    EXIT_CODES,
    EXPIRED,
    MALFORMED,
    TAMPERED,
    UNKNOWN_KEY,
    VALID,
    CouldNotCheck,
    Key,
    Result,
    fetch_keys,
    load_keys,
    verify_payload,
    verify_signed,
)
from credence_report_verifier.pdf import verify_image, verify_pdf

__version__ = "1.0.0"
__all__ = ["COULD_NOT_CHECK", "EXIT_CODES", "EXPIRED", "MALFORMED", "TAMPERED", "UNKNOWN_KEY", "VALID",
           "CouldNotCheck", "Key", "Result", "fetch_keys", "load_keys", "verify_bytes", "verify_file",
           "verify_image", "verify_payload", "verify_pdf", "verify_signed"]

IMAGE_SIGNATURES = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"II*\x00", b"MM\x00*", b"BM")


def verify_bytes(data: bytes, keys, now=None, scan=None) -> Result:
    """A file's content, whichever it is: PDF, image (needs the ``scan`` extra), JSON or a bare payload."""
    from credence_report_verifier import core

    if data.lstrip()[:5] == b"%PDF-":
        return verify_pdf(data, keys, now, scan)
    if data.startswith(IMAGE_SIGNATURES):
        return verify_image(data, keys, now)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return Result(MALFORMED, "The file is neither a PDF, an image, JSON nor a CRV1 payload.")
    if text.strip().startswith(core.PAYLOAD_PREFIX):
        return verify_payload(text, keys, now)
    return core.verify_json_text(text, keys, now)


def verify_file(path, keys, now=None, scan=None) -> Result:
    return verify_bytes(Path(path).read_bytes(), keys, now, scan)
