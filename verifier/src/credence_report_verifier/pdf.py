"""Reading a report PDF: the signed report it carries, and whether its page shows what was signed.

A Credence report PDF carries its signed report three times: the compact payload in the PDF's metadata
(``/CredenceReportPayload``), the signed JSON as an attached file (``credence-report.json``), and the payload as
the page's second QR code. With pypdf (pure Python) the first two are read; with the ``scan`` extra (PDFium and
zxing-cpp, wheels without system libraries) the QR codes are read from the rendered page as well, and from a
photo or scan of a printed report.

Every carrier found must verify and carry the same document; the link QR code must lead to the document's
``verify_url`` (with or without the ``?via=qr`` marker); and the page's text must show the signed report code,
holder, ID number, certificate number and expiry. Otherwise the PDF was changed: tampered.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from datetime import datetime, timezone

from credence_report_verifier import core

PAYLOAD_METADATA_KEY = "/CredenceReportPayload"
ATTACHMENT_NAME = "credence-report.json"
RENDER_SCALE = 3.0  # 216 dpi: the payload's modules are about 5 pixels wide
# what the link QR code adds to the report's verify_url (the authority's log tells a scan from a typed code); not
# signed: the link is the report's page with or without it
QR_MARKER = "?via=qr"
_SEVERITY = (core.TAMPERED, core.UNKNOWN_KEY, core.MALFORMED, core.EXPIRED, core.VALID)


def scanning_available() -> bool:
    try:
        import pypdfium2  # noqa: F401
        import zxingcpp  # noqa: F401
    except ImportError:
        return False
    return True


def qr_texts_in_image(image) -> list[str]:
    """The QR codes' texts in a PIL image."""
    import zxingcpp

    return [found.text for found in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)]


def qr_texts_in_pdf(data: bytes) -> list[str]:
    import pypdfium2

    document = pypdfium2.PdfDocument(data)
    try:
        texts = []
        for page in document:
            texts += qr_texts_in_image(page.render(scale=RENDER_SCALE).to_pil())
        return texts
    finally:
        document.close()


def _reader(data: bytes):
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        return PdfReader(io.BytesIO(data))
    except (PdfReadError, ValueError, OSError) as why:
        raise ValueError(f"the PDF does not open: {why}") from None


def page_text(reader) -> str:
    """All the pages' text, whitespace removed (extraction breaks lines where the layout does)."""
    return re.sub(r"\s+", "", "".join(page.extract_text() or "" for page in reader.pages))


def printed_facts(document: dict) -> dict[str, str]:
    """The signed facts the page prints, as they are printed."""
    subject = document.get("education_record") if document.get("kind") == "education_record" else \
        document.get("certificate")
    subject = subject if isinstance(subject, dict) else {}
    facts = {"report code": document.get("report_code"), "holder": subject.get("holder_name_masked"),
             "ID number": subject.get("resident_id_number_masked"),
             "certificate number": subject.get("certificate_number"),
             "expiry": str(document.get("expires_at", ""))[:16].replace("T", " ")}
    return {name: str(value) for name, value in facts.items() if value}


def leads_to_the_report(link: str, verify_url: str) -> bool:
    return link in (verify_url, verify_url + QR_MARKER)


def _worst(results: list[core.Result]) -> core.Result:
    return min(results, key=lambda result: _SEVERITY.index(result.verdict))


def verify_pdf(data: bytes, keys: Mapping[str, core.Key], now: datetime | None = None,
               scan: bool | None = None) -> core.Result:
    """``scan``: read the QR codes from the rendered page too (None: when the ``scan`` extra is installed)."""
    now = now or datetime.now(timezone.utc)
    try:
        reader = _reader(data)
        metadata = reader.metadata or {}
        payload = metadata.get(PAYLOAD_METADATA_KEY)
        attached = reader.attachments.get(ATTACHMENT_NAME) or []
    except Exception as why:  # pypdf raises many kinds on a damaged file
        return core.Result(core.MALFORMED, f"This is not a readable PDF: {why}.")
    found: list[tuple[str, core.Result]] = []
    if payload:
        found.append(("the payload in the PDF's metadata", core.verify_payload(str(payload), keys, now)))
    for content in attached[:2]:
        try:
            found.append((f"the attached {ATTACHMENT_NAME}",
                          core.verify_json_text(content.decode("utf-8"), keys, now)))
        except UnicodeDecodeError:
            found.append((f"the attached {ATTACHMENT_NAME}", core.Result(core.MALFORMED, "not UTF-8 text")))
    links: list[str] = []
    scanned = scanning_available() if scan is None else scan
    if scanned:
        for text in qr_texts_in_pdf(data):
            if text.startswith(core.PAYLOAD_PREFIX):
                found.append(("the signed QR code on the page", core.verify_payload(text, keys, now)))
            else:
                links.append(text)
    if not found:
        return core.Result(core.MALFORMED, "This PDF carries no signed Credence report (no payload in its metadata, "
                                           "no attached report" + (", no signed QR code)." if scanned else ")."))
    checks = [f"{where}: {result.verdict}" for where, result in found]
    worst = _worst([result for _where, result in found])
    if worst.verdict not in (core.VALID, core.EXPIRED):
        worst.checks = checks
        return worst
    documents = {json.dumps(result.document, sort_keys=True) for _where, result in found}
    if len(documents) > 1:
        return core.Result(core.TAMPERED, "The PDF carries two different signed reports: it was put together from "
                                          "others.", checks=checks)
    document = worst.document
    for link in links:
        if not leads_to_the_report(link, document["verify_url"]):
            return core.Result(core.TAMPERED, f"The page's link QR code leads to {link}, not to this report's page "
                                              f"{document['verify_url']}: do not follow it.", document,
                               worst.key_id, checks)
    if links:
        checks.append("the link QR code leads to the report's page")
    text = page_text(reader)
    if text:
        differing = [name for name, value in printed_facts(document).items() if re.sub(r"\s+", "", value) not in text]
        if differing:
            return core.Result(core.TAMPERED, "The page does not show what was signed (" + ", ".join(differing) +
                               "): its text was changed. Trust only the signed facts this verifier prints.",
                               document, worst.key_id, checks)
        checks.append("the page shows the signed facts")
    worst.checks = checks
    return worst


def verify_image(data: bytes, keys: Mapping[str, core.Key], now: datetime | None = None) -> core.Result:
    """A photo or scan of a printed report (needs the ``scan`` extra): its signed QR code."""
    from PIL import Image

    texts = qr_texts_in_image(Image.open(io.BytesIO(data)))
    payloads = [text for text in texts if text.startswith(core.PAYLOAD_PREFIX)]
    if not payloads:
        return core.Result(core.MALFORMED, "No signed Credence QR code (CRV1:) was found in the image.")
    result = core.verify_payload(payloads[0], keys, now)
    links = [text for text in texts if not text.startswith(core.PAYLOAD_PREFIX)]
    if result.document and not all(leads_to_the_report(link, result.document["verify_url"]) for link in links):
        return core.Result(core.TAMPERED, "The link QR code does not lead to this report's page: do not follow it.",
                           result.document, result.key_id)
    return result
